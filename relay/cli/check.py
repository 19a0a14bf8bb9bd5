"""`care-relay check`: what in the configuration and the directory would surprise an operator.

Each finding is one line naming the thing and what to change. Nothing is changed; the exit
status is 1 when something was found, 0 otherwise.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from relay import config
from relay.cli.db import run
from relay.directory import Directory
from relay.model import AGENT_CHANNELS
from relay.settings import Settings
from relay.text import one_line

#: where each channel sends to, on an agent (the console needs no address)
ADDRESS_FIELD = {"slack": "slack_user", "sms": "phone", "whatsapp": "whatsapp", "console": None}


@dataclass(frozen=True)
class Finding:
    kind: str
    message: str


def _loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _configuration(settings: Settings) -> Iterable[Finding]:
    url = settings.relay_public_base_url
    if not url and not settings.dev:
        yield Finding(
            "public_url_unset", "RELAY_PUBLIC_BASE_URL is not set: `serve` outside --dev will not start without it"
        )
    elif url:
        parts = urlsplit(url)
        if parts.scheme == "http" and not _loopback(parts.hostname or ""):
            yield Finding(
                "public_url_plain_http",
                f"RELAY_PUBLIC_BASE_URL is plain http outside loopback ({parts.hostname}): action links and"
                " Twilio's signatures travel unencrypted; put TLS in front and use https://",
            )
    yield from _slack(settings)
    twilio = {"TWILIO_ACCOUNT_SID": settings.twilio_account_sid, "TWILIO_AUTH_TOKEN": settings.twilio_auth_token}
    yield from _half("twilio", twilio)
    yield from _twilio_senders(settings)


def _twilio_senders(settings: Settings) -> Iterable[Finding]:
    """Twilio's senders: none at all, one that is ignored, a template with no WhatsApp, WhatsApp with none."""
    service, sms_from, wa_from = (
        settings.twilio_messaging_service_sid,
        settings.twilio_sms_from,
        settings.twilio_whatsapp_from,
    )
    if settings.twilio_enabled and not (sms_from or service or wa_from):
        yield Finding(
            "twilio_half_configured",
            "Twilio has credentials but no TWILIO_SMS_FROM, TWILIO_MESSAGING_SERVICE_SID or TWILIO_WHATSAPP_FROM:"
            " nothing can be sent by SMS or WhatsApp",
        )
    if service and sms_from:
        yield Finding(
            "sms_from_ignored",
            f"TWILIO_SMS_FROM is not used: SMS goes through the Messaging Service {service}"
            " (TWILIO_MESSAGING_SERVICE_SID), which picks the sender; unset one of them",
        )
    if settings.twilio_whatsapp_content_sid and not wa_from:
        yield Finding(
            "whatsapp_template_unused",
            "TWILIO_WHATSAPP_CONTENT_SID is set but TWILIO_WHATSAPP_FROM is not: WhatsApp stays off;"
            " set the WhatsApp sender number",
        )
    if settings.twilio_enabled and wa_from and not settings.twilio_whatsapp_content_sid:
        yield Finding(
            "whatsapp_no_template",
            "WhatsApp has no TWILIO_WHATSAPP_CONTENT_SID: an agent who has not written in for 24 hours cannot be"
            " reached there, and is invited on their next channel; set an approved template's HX… sid",
        )


def _confirmation(settings: Settings, agents: list[dict[str, Any]]) -> Iterable[Finding]:
    """Addresses nobody confirmed: with the requirement off, every one; with it on, each agent's waiting ones."""
    if not settings.relay_verify_addresses:
        yield Finding(
            "verification_off",
            "RELAY_VERIFY_ADDRESSES is off: invitations go to addresses their owners never confirmed,"
            " so a mistyped number reaches a stranger; turn it on outside a trial",
        )
        return
    for agent in agents:
        waiting = [channel for channel, ok in (agent.get("verified") or {}).items() if not ok]
        if agent["active"] and waiting:
            yield Finding(
                "address_unconfirmed",
                f"agent {one_line(agent['id'])} has not confirmed their {', '.join(waiting)} address: no invitation"
                f" goes there until they answer the join code (`care-relay agent verify {one_line(agent['id'])}`"
                " sends a new one)",
            )


def _slack(settings: Settings) -> Iterable[Finding]:
    """A bot token needs a road in (SLACK_SIGNING_SECRET for HTTP, SLACK_APP_TOKEN for Socket Mode), and the other way round."""
    inbound = [name for name, value in (("SLACK_SIGNING_SECRET", settings.slack_signing_secret),
                                        ("SLACK_APP_TOKEN", settings.slack_app_token)) if value]  # fmt: skip
    if settings.slack_bot_token and not inbound:
        yield Finding(
            "slack_half_configured",
            "Slack is half-configured: SLACK_BOT_TOKEN is set but SLACK_SIGNING_SECRET is not (nor SLACK_APP_TOKEN,"
            " for Socket Mode); the Slack channel stays off until one of them is",
        )
    elif inbound and not settings.slack_bot_token:
        yield Finding(
            "slack_half_configured",
            f"Slack is half-configured: {' and '.join(inbound)} {'is' if len(inbound) == 1 else 'are'} set but"
            " SLACK_BOT_TOKEN is not; the Slack channel stays off until it is",
        )


def slack_mode_line(settings: Settings) -> str | None:
    """How the relay talks to Slack, for the operator (None when Slack is off)."""
    return f"slack: {settings.slack_mode}" if settings.slack_enabled else None


def _half(name: str, values: Mapping[str, str | None]) -> Iterable[Finding]:
    missing = [key for key, value in values.items() if not value]
    if missing and len(missing) < len(values):
        have = ", ".join(key for key in values if key not in missing)
        yield Finding(
            f"{name}_half_configured",
            f"{name.capitalize()} is half-configured: {have} is set but {', '.join(missing)} is not;"
            f" the {name.capitalize()} channel stays off until both are",
        )


def _usable(agent: Mapping[str, Any], configured: frozenset[str]) -> list[str]:
    usable = []
    for channel in agent["channels"] or AGENT_CHANNELS:
        field = ADDRESS_FIELD.get(channel)
        if channel in configured and (field is None or agent.get(field)):
            usable.append(channel)
    return usable


def _expired(grant: Mapping[str, Any], now: datetime) -> bool:
    expires = grant["expires_at"]
    return bool(expires) and datetime.fromisoformat(str(expires).replace("Z", "+00:00")) <= now


def _directory(
    agents: list[dict[str, Any]], grants: list[dict[str, Any]], configured: frozenset[str], now: datetime
) -> Iterable[Finding]:
    active = [a for a in agents if a["active"]]
    for agent in active:
        if not _usable(agent, configured):
            wanted = ",".join(agent["channels"] or AGENT_CHANNELS)
            yield Finding(
                "agent_unreachable",
                f"agent {one_line(agent['id'])} has no usable channel (wants {wanted}; configured:"
                f" {','.join(sorted(configured)) or 'none'}); give them an address on a configured channel",
            )
    members = {group for agent in active for group in agent["groups"]}
    for grant in grants:
        if grant["revoked_at"]:
            continue
        name = f"grant {one_line(grant['id'])} ({one_line(grant['subject'])})"
        if _expired(grant, now):
            yield Finding("grant_expired", f"{name} expired at {grant['expires_at']}; renew it or revoke it")
            continue
        for group in grant["groups"]:
            if group not in members:
                yield Finding(
                    "group_empty",
                    f"{name} names group {one_line(group)}, which no active agent is in: nobody is invited",
                )


def findings(
    settings: Settings, agents: list[dict[str, Any]], grants: list[dict[str, Any]], *, now: datetime
) -> list[Finding]:
    """Everything worth an operator's attention, in a stable order. Pure: no I/O, `now` given."""
    return [
        *_configuration(settings),
        *_confirmation(settings, agents),
        *_directory(agents, grants, settings.configured_channels, now),
    ]


async def _read(directory: Directory) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    return await directory.agents(), await directory.grants()


def cmd_check(args: argparse.Namespace) -> int:
    settings = config.load(serving=False)
    if args.dev:
        settings = settings.model_copy(update={"dev": True})
    agents, grants = run(lambda inbox: _read(Directory(inbox.writer, inbox.reader, clock=time.time)))
    found = findings(settings, agents, grants, now=datetime.now(UTC))
    mode = slack_mode_line(settings)
    if args.json:
        print(json.dumps([asdict(f) for f in found], indent=2))
        return 1 if found else 0
    if mode:
        print(mode)
    if found:
        for finding in found:
            print(finding.message)
    else:
        print(f"ok: {len(agents)} agents and {len(grants)} grants checked; nothing to fix")
    return 1 if found else 0
