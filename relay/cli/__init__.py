"""`care-relay`: serve, migrate, manage the directory and consent, read the inbox, emit.

Settings come from the environment (and `.env` in the working directory); every
command that touches the database applies pending migrations first. Each command lives
in a module of its own; this one wires them to their arguments.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from importlib import metadata

from receivers import SENDERS
from relay.cli.check import cmd_check
from relay.cli.db import cmd_db_upgrade
from relay.cli.dev import cmd_emit
from relay.cli.directory import (
    cmd_agent_add,
    cmd_agent_away,
    cmd_agent_list,
    cmd_agent_remove,
    cmd_agent_verify,
    cmd_consent_grant,
    cmd_consent_list,
    cmd_consent_revoke,
)
from relay.cli.instructions import cmd_invite
from relay.cli.outbox import cmd_outbox, cmd_outbox_retry
from relay.cli.output import fail
from relay.cli.parser import Parser
from relay.cli.problems import EXPLAINED, explain
from relay.cli.serve import cmd_serve
from relay.cli.views import cmd_inbox
from relay.labels import LOCALES

#: `inbox` has no cursor (the admin API pages by 200 with one); this bounds one listing.
INBOX_LIMIT_MAX = 10000

#: what `add_subparsers` returns (argparse names no public type for it)
Subcommands = argparse._SubParsersAction

EXAMPLES = """examples:
  care-relay serve --dev --port 8081         the relay on this machine, console channel, demo directory
  care-relay emit golden-path                 (in a second terminal) send the demo signal to it
  care-relay agent add ana --display Ana --group care-circle --phone +40722123456 --channels sms
  care-relay consent grant actor:raz --scope panic.ui --group care-circle --by admin
  care-relay check                            what in the settings and the directory needs fixing

Settings come from the environment and a .env in the working directory (see .env.example).
"""
JSON_HELP = "print JSON instead of a table"


def int_range(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: a whole number from `low` to `high` (argparse reports anything else)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be from {low} to {high}, not {text}")
        return value

    return parse


def _add_serve(sub: Subcommands[Parser]) -> None:
    serve = sub.add_parser("serve", help="run the server (applies migrations first)")
    serve.add_argument("--host", help="listen address (default: RELAY_HOST, else 127.0.0.1)")
    serve.add_argument(
        "--port", type=int_range(0, 65535), help="listen port, 1-65535 (without it, or 0: RELAY_PORT, else 8080)"
    )
    serve.add_argument(
        "--dev",
        action="store_true",
        help="development: generate missing secrets (var/dev-secrets.env), console channel, demo directory",
    )
    serve.set_defaults(func=cmd_serve)


def _add_db(sub: Subcommands[Parser]) -> None:
    dbp = sub.add_parser("db", help="database maintenance", description="Database maintenance.")
    dbsub = dbp.add_subparsers(dest="db_command", required=True, metavar="COMMAND")
    dbsub.add_parser(
        "upgrade", help="apply pending migrations (Alembic)", description="Apply pending migrations."
    ).set_defaults(func=cmd_db_upgrade)


def _add_agent(sub: Subcommands[Parser]) -> None:
    agent = sub.add_parser(
        "agent", help="the internal directory", description="The internal directory."
    ).add_subparsers(dest="agent_command", required=True, metavar="COMMAND")
    add = agent.add_parser("add", help="add an agent", description="Add an agent to the directory.")
    add.add_argument("id", help="a new id (letters, digits, . _ -); a removed agent's id stays taken")
    add.add_argument("--display", required=True, help="the name people read, e.g. Ana")
    add.add_argument("--group", action="append", default=[], help="a group the agent is in (repeat, or comma-separate)")
    slack_who = add.add_mutually_exclusive_group()
    slack_who.add_argument("--slack-user", dest="slack_user", help="Slack user id, e.g. U024BE7LH")
    slack_who.add_argument(
        "--slack-email",
        dest="slack_email",
        help="find the Slack user id by email (users.lookupByEmail, with SLACK_BOT_TOKEN), e.g. ana@example.org",
    )
    add.add_argument(
        "--phone", help="SMS number as written: +40 722 123 456, or 0722 123 456 with RELAY_DEFAULT_REGION"
    )
    add.add_argument("--whatsapp", help="WhatsApp number, written like --phone")
    add.add_argument("--channels", help="order of preference, e.g. slack,sms,whatsapp")
    add.add_argument("--quiet-hours", dest="quiet_hours", help="e.g. 22:00-07:00")
    add.add_argument("--tz", help="the agent's time zone for quiet hours, Area/City, e.g. Europe/Bucharest")
    add.add_argument(
        "--locale", help=f"the language the agent reads: {', '.join(LOCALES)} (default: RELAY_DEFAULT_LOCALE)"
    )
    add.add_argument("--json", action="store_true", help="print the new agent as JSON")
    add.set_defaults(func=cmd_agent_add)
    lst = agent.add_parser("list", help="list agents", description="List the agents (phone numbers shortened).")
    lst.add_argument("--json", action="store_true", help=JSON_HELP + " (numbers in full)")
    lst.set_defaults(func=cmd_agent_list)
    verify = agent.add_parser(
        "verify",
        help="send a new join code to an agent's unconfirmed addresses",
        description="Send a new join code to the agent's unconfirmed addresses (or to one channel's);"
        " the running relay sends it, and the owner confirms by answering JOIN <code> or pressing Join.",
    )
    verify.add_argument("id", help="the agent's id")
    verify.add_argument("--channel", choices=["slack", "sms", "whatsapp"], help="only this channel's address")
    verify.add_argument("--json", action="store_true", help=JSON_HELP)
    verify.set_defaults(func=cmd_agent_verify)
    for word, what in (("away", "set an agent away: routing passes them over until they are back"),
                       ("back", "set an agent back: invitations can reach them again")):  # fmt: skip
        switch = agent.add_parser(word, help=what, description=what[0].upper() + what[1:] + " (audited).")
        switch.add_argument("id", help="the agent's id")
        switch.add_argument("--by", help="who asks (kept in the audit trail; default: operator)")
        switch.set_defaults(func=cmd_agent_away)
    rm = agent.add_parser("remove", help="remove an agent", description="Remove an agent; the id stays taken.")
    rm.add_argument("id", help="the agent's id")
    rm.set_defaults(func=cmd_agent_remove)


def _add_consent(sub: Subcommands[Parser]) -> None:
    consent = sub.add_parser("consent", help="explicit consent grants", description="Explicit consent grants.")
    consent_sub = consent.add_subparsers(dest="consent_command", required=True, metavar="COMMAND")
    grant = consent_sub.add_parser(
        "grant",
        help="grant consent (prints the grant id first)",
        description="Grant consent; prints the grant id first.",
    )
    grant.add_argument("subject", help="actor:<id> or tenant:<uuid>")
    grant.add_argument(
        "--scope", required=True, help="event types it covers, comma-separated, e.g. panic.ui,status.set"
    )
    grant.add_argument("--group", action="append", required=True, help="a group to invite (repeat, or comma-separate)")
    grant.add_argument("--channel", help="allowed channels, comma-separated (default: all)")
    grant.add_argument("--expires", help="when it ends, ISO 8601 (default: never)")
    grant.add_argument(
        "--min-confidence",
        dest="min_confidence",
        choices=["low", "medium", "high"],
        help="AiSHA: the least confidence of an escalation it covers",
    )
    grant.add_argument("--by", required=True, help="the admin who grants")
    grant.add_argument("--json", action="store_true", help="print the new grant as JSON")
    grant.set_defaults(func=cmd_consent_grant)
    clist = consent_sub.add_parser("list", help="list grants", description="List grants, revoked ones included.")
    clist.add_argument("--subject", help="only the grants of this subject")
    clist.add_argument("--json", action="store_true", help=JSON_HELP)
    clist.set_defaults(func=cmd_consent_list)
    revoke = consent_sub.add_parser(
        "revoke", help="revoke a grant (recorded, not erased)", description="Revoke a grant (recorded, not erased)."
    )
    revoke.add_argument("grant_id", help="the id `consent grant` printed")
    revoke.add_argument("--by", required=True, help="the admin who revokes")
    revoke.set_defaults(func=cmd_consent_revoke)


def _add_invite(sub: Subcommands[Parser]) -> None:
    invite = sub.add_parser(
        "invite",
        help="invite named agents for a loop not done, now (a person's instruction, audited)",
        description="Invite named agents for a loop that is not done, as your instruction: the kill switch,"
        " shadow mode, the care window and the hourly limit do not stop it; consent and the directory do."
        " The running relay sends the invitations.",
    )
    invite.add_argument("event_id", metavar="EVENT_ID", help="the signal's event id")
    invite.add_argument(
        "--agent", action="append", required=True, help="an agent to invite (repeat, or comma-separate)"
    )
    invite.add_argument("--by", required=True, help="who asks (kept in the audit trail and on the invitation)")
    invite.add_argument("--source", choices=list(SENDERS), help="the sender, where two used the same event id")
    invite.add_argument(
        "--dev", action="store_true", help="choose channels as `serve --dev` does (the console channel counts)"
    )
    invite.add_argument("--json", action="store_true", help="print the answer as JSON")
    invite.set_defaults(func=cmd_invite)


def _add_inbox(sub: Subcommands[Parser]) -> None:
    inbox = sub.add_parser("inbox", help="the loops, newest first", description="The loops, newest first.")
    inbox.add_argument("--open", action="store_true", help="only invited or acked loops")
    inbox.add_argument(
        "--limit", type=int_range(1, INBOX_LIMIT_MAX), default=50, help=f"1-{INBOX_LIMIT_MAX} (default 50)"
    )
    inbox.add_argument("--json", action="store_true", help=JSON_HELP)
    inbox.set_defaults(func=cmd_inbox)


def _add_outbox(sub: Subcommands[Parser]) -> None:
    outbox = sub.add_parser(
        "outbox", help="work not yet done (pending, sending, failed), newest first; `outbox retry` redoes failed work"
    )
    outbox.add_argument("--status", help="failed, pending or sending (comma-separate several; default: all three)")
    outbox.add_argument(
        "--kind",
        help="invite, directed_invite, update, callback, forward or verify (comma-separate several; default: all)",
    )
    outbox.add_argument(
        "--limit", type=int_range(1, INBOX_LIMIT_MAX), default=50, help=f"1-{INBOX_LIMIT_MAX} (default 50)"
    )
    outbox.add_argument("--json", action="store_true", help=JSON_HELP)
    outbox.set_defaults(func=cmd_outbox)
    retry = outbox.add_subparsers(dest="outbox_command", metavar="COMMAND").add_parser(
        "retry", help="make failed rows due now with a fresh attempt budget (audited, with --by)"
    )
    retry.add_argument("ids", nargs="*", metavar="ID", help="ids of failed rows, from `care-relay outbox`")
    retry.add_argument("--failed", action="store_true", help="every failed row (of --kind, when given)")
    retry.add_argument("--kind", help="with --failed: only rows of these kinds (comma-separated)")
    retry.add_argument("--by", required=True, help="who asks for the retry (kept in the audit trail)")
    retry.set_defaults(func=cmd_outbox_retry)


def _add_emit(sub: Subcommands[Parser]) -> None:
    emit = sub.add_parser(
        "emit",
        help="sign a payload with the configured secret and POST it",
        description="Sign a payload as a sender would and POST it to a running relay.",
    )
    emit.add_argument(
        "what",
        choices=[*SENDERS, "golden-path"],
        help="the sender whose FILE to sign, or golden-path (the demo signal)",
    )
    emit.add_argument("file", nargs="?", help="the payload, one JSON object (not with golden-path)")
    emit.add_argument("--url", help="where to POST (default: the dev server's address, else RELAY_PUBLIC_BASE_URL)")
    emit.add_argument(
        "--as-is",
        action="store_true",
        help="send FILE's id, ts and nonce unchanged (to try replays); by default each emit is a new event",
    )
    emit.set_defaults(func=cmd_emit)


def _add_check(sub: Subcommands[Parser]) -> None:
    check = sub.add_parser(
        "check",
        help="name what in the settings and the directory would surprise an operator (exit 1 if anything)",
        description="Read the configuration and the directory and name, one line each, what needs fixing:"
        " agents with no usable channel, grants to empty groups, expired grants, a public URL over plain"
        " http, Slack or Twilio half-configured. Exits 1 when something was found.",
    )
    check.add_argument("--dev", action="store_true", help="judge as `serve --dev` runs (the console channel counts)")
    check.add_argument("--json", action="store_true", help="print the findings as a JSON list")
    check.set_defaults(func=cmd_check)


def _version() -> str:
    try:
        return metadata.version("care-relay")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    """Every command, its arguments and the function that runs it (`args.func`)."""
    parser = Parser(prog="care-relay", description="A human-in-the-loop relay for care signals.", epilog=EXAMPLES)
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}", help="print the version")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=Parser)
    for add in (
        _add_serve, _add_db, _add_agent, _add_consent, _add_invite, _add_inbox, _add_outbox, _add_emit, _add_check,
    ):  # fmt: skip
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; its exit code (2 with one line on stderr when it fails, 130 when interrupted)."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except EXPLAINED as exc:
        return fail(explain(exc))
