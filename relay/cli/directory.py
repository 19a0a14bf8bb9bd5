"""`care-relay agent …` and `care-relay consent …`: the internal directory and consent grants."""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Sequence
from typing import Any

from inbox import Inbox
from relay import config
from relay.channels.slack.lookup import SlackLookupError, user_id_by_email
from relay.cli.db import run
from relay.cli.output import print_table
from relay.cli.problems import CliError
from relay.directory import Directory, confirming
from relay.redact import redact


def _comma(values: Sequence[str] | None) -> list[str]:
    return [v.strip() for item in values or [] for v in item.split(",") if v.strip()]


def _directory(inbox: Inbox) -> Directory:
    """The directory over the CLI's own connection; its times are the wall clock's. Phone numbers
    written without a country code are read in RELAY_DEFAULT_REGION; a join code it queues is
    sent by the running relay's outbox."""
    settings = config.load(serving=False)
    return Directory(
        inbox.writer,
        inbox.reader,
        clock=time.time,
        region=settings.relay_default_region,
        confirm_on=confirming(settings),
    )


def _confirmed(verified: dict[str, bool]) -> str:
    """`sms yes, slack no`: each address and whether its owner confirmed it."""
    return ", ".join(f"{channel} {'yes' if ok else 'no'}" for channel, ok in verified.items())


def _slack_user_by_email(email: str) -> str:
    """`--slack-email`: the Slack user id, asked of Slack before the directory is touched."""
    try:
        return asyncio.run(user_id_by_email(config.load(serving=False), email))
    except SlackLookupError as exc:
        raise CliError(str(exc)) from None


def cmd_agent_add(args: argparse.Namespace) -> int:
    data: dict[str, Any] = {"id": args.id, "display": args.display, "groups": _comma(args.group)}
    if getattr(args, "slack_email", None):
        args.slack_user = _slack_user_by_email(args.slack_email)
    for key in ("slack_user", "phone", "whatsapp", "quiet_hours", "tz", "locale"):
        if getattr(args, key):
            data[key] = getattr(args, key)
    if args.channels:
        data["channels"] = _comma([args.channels])
    agent = run(lambda inbox: _directory(inbox).add_agent(data))
    print(json.dumps(agent) if args.json else f"added agent {agent['id']}")
    return 0


def cmd_agent_list(args: argparse.Namespace) -> int:
    agents = run(lambda inbox: _directory(inbox).agents())
    if args.json:
        print(json.dumps(agents, indent=2))
        return 0
    for agent in agents:
        agent["phone"] = redact(agent["phone"])
        agent["whatsapp"] = redact(agent["whatsapp"])
        agent["verified"] = _confirmed(agent["verified"])
    print_table(
        agents,
        [
            "id", "display", "groups", "channels", "slack_user", "phone", "whatsapp", "verified", "quiet_hours",
            "tz", "locale", "active", "away",
        ],
    )  # fmt: skip
    return 0


def cmd_agent_verify(args: argparse.Namespace) -> int:
    result = run(lambda inbox: _directory(inbox).verify(args.id, args.channel))
    if args.json:
        print(json.dumps(result))
    elif result["sent"]:
        print(f"join code sent to {args.id} on {', '.join(result['sent'])}; they confirm by answering it")
    else:
        print(
            f"nothing to send: {args.id}'s addresses are {_confirmed(result['verified']) or 'none'}"
            " (a code goes only to unconfirmed addresses, and only while RELAY_VERIFY_ADDRESSES is on)"
        )
    return 0


def cmd_agent_away(args: argparse.Namespace) -> int:
    """`agent away ID` / `agent back ID`: a person's instruction, audited (CONTRACT section 10)."""
    away = args.agent_command == "away"
    by = args.by or "operator"
    instruction = f"{by} set {args.id} {'away' if away else 'back'} by the command line"
    run(lambda inbox: _directory(inbox).set_away(args.id, away, instruction=instruction, via="cli"))
    if away:
        print(f"{args.id} is away: routing passes them over until they are back (`care-relay agent back {args.id}`)")
    else:
        print(f"{args.id} is back: invitations can reach them again")
    return 0


def cmd_agent_remove(args: argparse.Namespace) -> int:
    run(lambda inbox: _directory(inbox).remove_agent(args.id))
    print(f"removed agent {args.id}")
    return 0


def cmd_consent_grant(args: argparse.Namespace) -> int:
    data: dict[str, Any] = {
        "subject": args.subject,
        "scope": _comma([args.scope]),
        "groups": _comma(args.group),
        "channels": _comma([args.channel]) if args.channel else [],
        "by": args.by,
    }
    if args.expires:
        data["expires_at"] = args.expires
    if args.min_confidence:
        data["min_confidence"] = args.min_confidence
    grant = run(lambda inbox: _directory(inbox).grant_consent(data))
    print(grant["id"])
    if args.json:
        print(json.dumps(grant))
    else:
        print(f"granted {grant['subject']}: {','.join(grant['scope'])} to {','.join(grant['groups'])}")
    return 0


def cmd_consent_list(args: argparse.Namespace) -> int:
    grants = run(lambda inbox: _directory(inbox).grants(args.subject))
    if args.json:
        print(json.dumps(grants, indent=2))
        return 0
    print_table(
        grants,
        ["id", "subject", "scope", "groups", "channels", "expires_at", "by", "granted_at", "revoked_at", "revoked_by"],
    )
    return 0


def cmd_consent_revoke(args: argparse.Namespace) -> int:
    grant = run(lambda inbox: _directory(inbox).revoke_consent(args.grant_id, args.by))
    print(f"revoked {grant['id']} ({grant['subject']}) by {grant['revoked_by']}")
    return 0
