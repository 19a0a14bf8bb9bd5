"""`care-relay`: serve, migrate, manage the directory and consent, read the inbox, emit.

Settings come from the environment (and `.env` in the working directory); every
command that touches the database applies pending migrations first.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from inbox import db
from receivers import signing
from relay import settings as settings_mod
from relay.errors import RelayError
from relay.redact import redact
from relay.settings import ConfigError, Settings


def _fail(message: str) -> int:
    print(f"care-relay: {message}", file=sys.stderr)
    return 2


# serve / db --------------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    from relay.app import create_app

    settings = settings_mod.load(dev=args.dev)
    host = args.host or settings.relay_host
    port = args.port or settings.relay_port
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    # Drivers log statement parameters at DEBUG: phone numbers must never reach a log.
    for noisy in ("aiohttp.access", "aiosqlite", "sqlalchemy.engine", "asyncpg"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    app = create_app(settings)
    if args.dev:
        app.on_startup.append(_seed_demo)
        app.on_startup.append(lambda _app: _print_dev_banner(settings, host, port))
    web.run_app(app, host=host, port=port, print=None, access_log=None)
    return 0


async def _seed_demo(app: web.Application) -> None:
    from relay import directory
    from relay.state import ENGINE, WRITER

    if await directory.seed_demo_directory(app[WRITER], app[ENGINE]):
        print("dev mode: the directory was empty; seeded agent 'ana' (console, group care-circle)"
              " and a grant for actor:raz (panic.ui, status.set -> care-circle)", flush=True)


async def _print_dev_banner(settings: Settings, host: str, port: int) -> None:
    print(
        "\n".join(
            [
                f"care-relay (dev) listening on http://{host}:{port}",
                f"  database:     {settings.relay_database_url}",
                f"  dev secrets:  {settings_mod.DEV_SECRETS_FILE.resolve()} (0600)",
                "  channels:     " + ", ".join(sorted(settings.configured_channels)),
                "",
                "Next, in a second terminal (same directory):",
                "  .venv/bin/care-relay emit golden-path",
                "The invitation for Ana is then printed here, with its action link",
                f"({settings.public_base_url}/a/…): open it in a browser to answer or close the loop.",
                "emit prints the status URL, which shows the ack and the done.",
                "",
            ]
        ),
        flush=True,
    )


async def _upgrade(settings: Settings) -> None:
    engine = db.create_engine(settings.relay_database_url)
    try:
        await db.upgrade(engine)
    finally:
        await engine.dispose()


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    settings = settings_mod.load(require_secrets=False)
    asyncio.run(_upgrade(settings))
    print("database is up to date")
    return 0


# directory, consent, inbox ---------------------------------------------------------


@contextlib.asynccontextmanager
async def _storage(settings: Settings) -> AsyncIterator[tuple[Any, Any]]:
    """The database as a command uses it: migrated first, written through the writer."""
    from inbox.writer import Writer

    engine = db.create_engine(settings.relay_database_url)
    await db.upgrade(engine)
    writer = Writer(settings.relay_database_url, engine)
    await writer.start()
    try:
        yield engine, writer
    finally:
        await writer.close()
        await engine.dispose()


def _run(action: Callable[[Any, Any], Awaitable[Any]]) -> Any:
    settings = settings_mod.load(require_secrets=False)

    async def go() -> Any:
        async with _storage(settings) as (engine, writer):
            return await action(engine, writer)

    return asyncio.run(go())


def print_table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    """Rows as an aligned text table (lists joined with commas, None as '-')."""

    def cell(value: Any) -> str:
        if value is None or value == []:
            return "-"
        if isinstance(value, list):
            return ",".join(str(v) for v in value)
        return str(value)

    cells = [[cell(r.get(c)) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    print("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths)).rstrip())
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip())
    if not rows:
        print("(none)")


def _comma(values: Sequence[str] | None) -> list[str]:
    return [v.strip() for item in values or [] for v in item.split(",") if v.strip()]


def _relay_error(exc: RelayError) -> int:
    fields = exc.extra.get("fields") or []
    details = "; ".join(f"{'.'.join(map(str, f['loc'])) or 'input'}: {f['msg']}" for f in fields)
    return _fail(f"invalid input: {details}" if details else exc.detail)


def cmd_agent_add(args: argparse.Namespace) -> int:
    from relay import directory

    data: dict[str, Any] = {"id": args.id, "display": args.display, "groups": _comma(args.group)}
    for key in ("slack_user", "phone", "whatsapp", "quiet_hours", "tz"):
        if getattr(args, key):
            data[key] = getattr(args, key)
    if args.channels:
        data["channels"] = _comma([args.channels])
    agent = _run(lambda engine, writer: directory.add_agent(writer, data))
    print(json.dumps(agent) if args.json else f"added agent {agent['id']}")
    return 0


def cmd_agent_list(args: argparse.Namespace) -> int:
    from inbox import store
    from relay import directory

    agents = [directory.agent_view(a) for a in _run(lambda engine, writer: store.list_agents(engine))]
    if args.json:
        print(json.dumps(agents, indent=2))
        return 0
    for agent in agents:
        agent["phone"] = redact(agent["phone"])
        agent["whatsapp"] = redact(agent["whatsapp"])
    print_table(agents, ["id", "display", "groups", "channels", "slack_user", "phone", "whatsapp", "quiet_hours", "tz", "active"])
    return 0


def cmd_agent_remove(args: argparse.Namespace) -> int:
    from relay import directory

    _run(lambda engine, writer: directory.remove_agent(writer, args.id))
    print(f"removed agent {args.id}")
    return 0


def cmd_consent_grant(args: argparse.Namespace) -> int:
    from relay import directory

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
    grant = _run(lambda engine, writer: directory.grant_consent(writer, data))
    print(grant["id"])
    if args.json:
        print(json.dumps(grant))
    else:
        print(f"granted {grant['subject']}: {','.join(grant['scope'])} to {','.join(grant['groups'])}")
    return 0


def cmd_consent_list(args: argparse.Namespace) -> int:
    from inbox import store
    from relay import directory

    grants = [directory.grant_view(g) for g in _run(lambda engine, writer: store.list_grants(engine, args.subject))]
    if args.json:
        print(json.dumps(grants, indent=2))
        return 0
    print_table(grants, ["id", "subject", "scope", "groups", "channels", "expires_at", "by", "granted_at", "revoked_at", "revoked_by"])
    return 0


def cmd_consent_revoke(args: argparse.Namespace) -> int:
    from relay import directory

    grant = _run(lambda engine, writer: directory.revoke_consent(writer, args.grant_id, args.by))
    print(f"revoked {grant['id']} ({grant['subject']}) by {grant['revoked_by']}")
    return 0


def cmd_inbox(args: argparse.Namespace) -> int:
    from inbox import store
    from relay.web.status import iso

    statuses = ["invited", "acked"] if args.open else []
    rows = _run(lambda engine, writer: store.inbox_page(engine, statuses=statuses, limit=args.limit))
    for row in rows:
        row["received_at"] = iso(row["received_at"])
        del row["row"]
    if args.json:
        print(json.dumps(rows, indent=2, ensure_ascii=False))
        return 0
    table = [
        {
            **row,
            "invitations": [f"{i['agent']}/{i['channel'] or '-'}:{i['status']}" for i in row["invitations"]],
        }
        for row in rows
    ]
    print_table(table, ["received_at", "source", "id", "type", "status", "invitations", "acks", "reason"])
    return 0


# emit --------------------------------------------------------------------------------


def _secret_for(settings: Settings, source: str) -> str | None:
    configured = settings.m3_webhook_secrets if source == "m3" else settings.aisha_webhook_secrets
    if configured:
        return configured[0]
    # The dev server keeps generated secrets here; emit reads them, it never creates them.
    dev = settings_mod.read_env_file(settings_mod.DEV_SECRETS_FILE)
    value = dev.get("M3_WEBHOOK_SECRETS" if source == "m3" else "AISHA_WEBHOOK_SECRETS", "")
    return value.split(",")[-1].strip() or None


def freshen(source: str, payload: dict[str, Any], now: datetime) -> dict[str, Any]:
    """A fresh id, timestamp and nonce, so each emit is a new event."""
    stamp = now.isoformat(timespec="seconds").replace("+00:00", "Z")
    out = dict(payload)
    if source == "m3":
        out["id"] = "evt_" + uuid.uuid4().hex[:20].upper()
        out["ts"] = stamp
        security = dict(out.get("security") or {})
        security["nonce"] = uuid.uuid4().hex
        out["security"] = security
    else:
        out["event_id"] = str(uuid.uuid4())
        out["ts"] = stamp
    return out


def signed_request(source: str, payload: dict[str, Any], secret: str, now: int) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    headers = {"Content-Type": "application/json"}
    if source == "m3":
        headers.update(signing.sign_m3(body, secret, ts=now, event_type=str(payload.get("type", ""))))
    else:
        headers.update(signing.sign_aisha(body, secret, ts=now, event_id=str(payload.get("event_id", ""))))
    return body, headers


async def _post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as session:
        async with session.post(url, data=body, headers=headers) as response:
            text = await response.text()
            try:
                return response.status, json.loads(text)
            except ValueError:
                return response.status, text


def cmd_emit(args: argparse.Namespace) -> int:
    settings = settings_mod.load(require_secrets=False)
    if args.what == "golden-path":
        source = "m3"
        payload = json.loads(resources.files("relay.demo").joinpath("panic_ui.json").read_text(encoding="utf-8"))
    else:
        source = args.what
        if not args.file:
            return _fail(f"emit {source} needs a FILE.json")
        try:
            payload = json.loads(Path(args.file).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            return _fail(f"cannot read {args.file}: {exc}")
        if not isinstance(payload, dict):
            return _fail(f"{args.file} must hold one JSON object")
    secret = _secret_for(settings, source)
    if not secret:
        name = "M3_WEBHOOK_SECRETS" if source == "m3" else "AISHA_WEBHOOK_SECRETS"
        return _fail(f"{name} is not set (and no {settings_mod.DEV_SECRETS_FILE} here); set it or run from the dev server's directory")
    base = settings.public_base_url
    url = args.url or f"{base}/hooks/{source}"
    if not args.as_is:
        payload = freshen(source, payload, datetime.now(UTC))
    body, headers = signed_request(source, payload, secret, int(time.time()))
    try:
        status, answer = asyncio.run(_post(url, body, headers))
    except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
        return _fail(f"could not reach {url}: {exc or type(exc).__name__}; is the relay running (make run)?")
    print(f"POST {url} -> {status}")
    print(json.dumps(answer, indent=2, ensure_ascii=False))
    if isinstance(answer, dict) and answer.get("status_url"):
        origin = url.split("/hooks/")[0] if "/hooks/" in url else base
        print(f"\nstatus: {origin}{answer['status_url']}")
    return 0 if status < 400 else 1


# parser ------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="care-relay", description="A human-in-the-loop relay for care signals.")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the server (applies migrations first)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--dev", action="store_true", help="generate missing secrets, console channel, demo directory")
    serve.set_defaults(func=cmd_serve)

    dbp = sub.add_parser("db", help="database maintenance")
    dbsub = dbp.add_subparsers(dest="db_command", required=True)
    dbsub.add_parser("upgrade", help="apply migrations").set_defaults(func=cmd_db_upgrade)

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

    consent = sub.add_parser("consent", help="explicit consent grants").add_subparsers(dest="consent_command", required=True)
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

    inbox = sub.add_parser("inbox", help="the loops, newest first")
    inbox.add_argument("--open", action="store_true", help="only invited or acked loops")
    inbox.add_argument("--limit", type=int, default=50)
    inbox.add_argument("--json", action="store_true")
    inbox.set_defaults(func=cmd_inbox)

    emit = sub.add_parser("emit", help="sign a payload with the configured secret and POST it")
    emit.add_argument("what", choices=["m3", "aisha", "golden-path"])
    emit.add_argument("file", nargs="?")
    emit.add_argument("--url")
    emit.add_argument(
        "--as-is",
        action="store_true",
        help="send FILE's id, ts and nonce unchanged (to try replays); by default each emit is a new event",
    )
    emit.set_defaults(func=cmd_emit)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        return _fail(str(exc))
    except RelayError as exc:
        return _relay_error(exc)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
