"""`care-relay`: serve, migrate, manage the directory and consent, read the inbox, emit.

Settings come from the environment (and `.env` in the working directory); every
command that touches the database applies pending migrations first. Each command lives
in a module of its own; this one wires them to their arguments.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence

from receivers import SENDERS
from relay.cli.db import cmd_db_upgrade
from relay.cli.dev import cmd_emit
from relay.cli.directory import (
    cmd_agent_add,
    cmd_agent_list,
    cmd_agent_remove,
    cmd_consent_grant,
    cmd_consent_list,
    cmd_consent_revoke,
)
from relay.cli.outbox import cmd_outbox, cmd_outbox_retry
from relay.cli.output import fail
from relay.cli.problems import EXPLAINED, explain
from relay.cli.serve import cmd_serve
from relay.cli.views import cmd_inbox

#: `inbox` has no cursor (the admin API pages by 200 with one); this bounds one listing.
INBOX_LIMIT_MAX = 10000

#: what `add_subparsers` returns (argparse names no public type for it)
Subcommands = argparse._SubParsersAction


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


def _add_serve(sub: Subcommands[argparse.ArgumentParser]) -> None:
    serve = sub.add_parser("serve", help="run the server (applies migrations first)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int_range(0, 65535), help="1-65535 (without it, or 0: RELAY_PORT)")
    serve.add_argument("--dev", action="store_true", help="generate missing secrets, console channel, demo directory")
    serve.set_defaults(func=cmd_serve)


def _add_db(sub: Subcommands[argparse.ArgumentParser]) -> None:
    dbp = sub.add_parser("db", help="database maintenance")
    dbsub = dbp.add_subparsers(dest="db_command", required=True)
    dbsub.add_parser("upgrade", help="apply migrations").set_defaults(func=cmd_db_upgrade)


def _add_agent(sub: Subcommands[argparse.ArgumentParser]) -> None:
    agent = sub.add_parser("agent", help="the internal directory").add_subparsers(dest="agent_command", required=True)
    add = agent.add_parser("add", help="add an agent")
    add.add_argument("id")
    add.add_argument("--display", required=True)
    add.add_argument("--group", action="append", default=[], help="repeat, or comma-separate")
    add.add_argument("--slack-user", dest="slack_user")
    add.add_argument("--phone", help="+E164")
    add.add_argument("--whatsapp", help="+E164")
    add.add_argument("--channels", help="order of preference, e.g. slack,sms,whatsapp")
    add.add_argument("--quiet-hours", dest="quiet_hours", help="e.g. 22:00-07:00")
    add.add_argument("--tz", help="Area/City, e.g. Europe/Bucharest")
    add.add_argument("--json", action="store_true")
    add.set_defaults(func=cmd_agent_add)
    lst = agent.add_parser("list", help="list agents")
    lst.add_argument("--json", action="store_true")
    lst.set_defaults(func=cmd_agent_list)
    rm = agent.add_parser("remove", help="remove an agent")
    rm.add_argument("id")
    rm.set_defaults(func=cmd_agent_remove)


def _add_consent(sub: Subcommands[argparse.ArgumentParser]) -> None:
    consent = sub.add_parser("consent", help="explicit consent grants").add_subparsers(
        dest="consent_command", required=True
    )
    grant = consent.add_parser("grant", help="grant consent (prints the grant id first)")
    grant.add_argument("subject", help="actor:<id> or tenant:<uuid>")
    grant.add_argument("--scope", required=True, help="event types, comma-separated")
    grant.add_argument("--group", action="append", required=True, help="repeat, or comma-separate")
    grant.add_argument("--channel", help="allowed channels, comma-separated (default: all)")
    grant.add_argument("--expires", help="ISO 8601")
    grant.add_argument("--min-confidence", dest="min_confidence", choices=["low", "medium", "high"])
    grant.add_argument("--by", required=True, help="the admin who grants")
    grant.add_argument("--json", action="store_true")
    grant.set_defaults(func=cmd_consent_grant)
    clist = consent.add_parser("list", help="list grants")
    clist.add_argument("--subject")
    clist.add_argument("--json", action="store_true")
    clist.set_defaults(func=cmd_consent_list)
    revoke = consent.add_parser("revoke", help="revoke a grant (recorded, not erased)")
    revoke.add_argument("grant_id")
    revoke.add_argument("--by", required=True)
    revoke.set_defaults(func=cmd_consent_revoke)


def _add_inbox(sub: Subcommands[argparse.ArgumentParser]) -> None:
    inbox = sub.add_parser("inbox", help="the loops, newest first")
    inbox.add_argument("--open", action="store_true", help="only invited or acked loops")
    inbox.add_argument(
        "--limit", type=int_range(1, INBOX_LIMIT_MAX), default=50, help=f"1-{INBOX_LIMIT_MAX} (default 50)"
    )
    inbox.add_argument("--json", action="store_true")
    inbox.set_defaults(func=cmd_inbox)


def _add_outbox(sub: Subcommands[argparse.ArgumentParser]) -> None:
    outbox = sub.add_parser(
        "outbox", help="work not yet done (pending, sending, failed), newest first; `outbox retry` redoes failed work"
    )
    outbox.add_argument("--status", help="failed, pending or sending (comma-separate several; default: all three)")
    outbox.add_argument("--kind", help="invite, update, callback or forward (comma-separate several; default: all)")
    outbox.add_argument(
        "--limit", type=int_range(1, INBOX_LIMIT_MAX), default=50, help=f"1-{INBOX_LIMIT_MAX} (default 50)"
    )
    outbox.add_argument("--json", action="store_true")
    outbox.set_defaults(func=cmd_outbox)
    retry = outbox.add_subparsers(dest="outbox_command").add_parser(
        "retry", help="make failed rows due now with a fresh attempt budget (audited, with --by)"
    )
    retry.add_argument("ids", nargs="*", metavar="ID", help="ids of failed rows, from `care-relay outbox`")
    retry.add_argument("--failed", action="store_true", help="every failed row (of --kind, when given)")
    retry.add_argument("--kind", help="with --failed: only rows of these kinds (comma-separated)")
    retry.add_argument("--by", required=True, help="who asks for the retry (kept in the audit trail)")
    retry.set_defaults(func=cmd_outbox_retry)


def _add_emit(sub: Subcommands[argparse.ArgumentParser]) -> None:
    emit = sub.add_parser("emit", help="sign a payload with the configured secret and POST it")
    emit.add_argument("what", choices=[*SENDERS, "golden-path"])
    emit.add_argument("file", nargs="?")
    emit.add_argument("--url")
    emit.add_argument(
        "--as-is",
        action="store_true",
        help="send FILE's id, ts and nonce unchanged (to try replays); by default each emit is a new event",
    )
    emit.set_defaults(func=cmd_emit)


def build_parser() -> argparse.ArgumentParser:
    """Every command, its arguments and the function that runs it (`args.func`)."""
    parser = argparse.ArgumentParser(prog="care-relay", description="A human-in-the-loop relay for care signals.")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_add_serve, _add_db, _add_agent, _add_consent, _add_inbox, _add_outbox, _add_emit):
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
