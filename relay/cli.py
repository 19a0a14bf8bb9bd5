"""`care-relay`: serve, migrate, manage the directory and consent, read the inbox, emit.

Settings come from the environment (and `.env` in the working directory); every
command that touches the database applies pending migrations first.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import json
import logging
import os
import re
import socket
import sqlite3
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from alembic.util import CommandError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError

from inbox import db
from receivers import SENDERS
from receivers.json_body import dumps
from relay import settings as settings_mod
from relay.errors import RelayError
from relay.redact import redact
from relay.settings import ConfigError, Settings
from relay.text import one_line


def _fail(message: str) -> int:
    print(f"care-relay: {message}", file=sys.stderr)
    return 2


class CliError(Exception):
    """A one-line, operator-facing reason a command failed (`main` prints it)."""


# failures, one line each -------------------------------------------------------------

#: What opening a database can raise: an unparsable or unsupported URL (ArgumentError,
#: ValueError), a driver that is not installed (ImportError), an unreachable server
#: (OSError), refused credentials or a file that is not a database (DBAPIError,
#: sqlite3.Error), a schema this version does not know (alembic's CommandError).
DATABASE_ERRORS: tuple[type[BaseException], ...] = (
    SQLAlchemyError,
    sqlite3.Error,
    ImportError,
    OSError,
    OverflowError,
    ValueError,
    CommandError,
)
URL_FORMS = "sqlite+aiosqlite:///path/to/relay.db or postgresql+asyncpg://user:password@host:port/dbname"


def safe_url(url: str) -> str:
    """The database URL as it may be shown: the password (also one in the query) masked."""
    try:
        parsed = make_url(url)
        hidden = {k: "***" for k in parsed.query if re.search(r"pass|secret|token", k, re.IGNORECASE)}
        return parsed.update_query_dict(hidden).render_as_string(hide_password=True)
    except (ArgumentError, ValueError, TypeError):  # unparsable: hide everything that could be credentials
        return re.sub(r"^(.*?//)?.*@", r"\1***@", url, flags=re.DOTALL).replace("\n", " ")


def _reason(exc: BaseException) -> str:
    """A short, one-line reason: the driver's own message, never the SQL or its parameters."""
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        exc = exc.orig
    if isinstance(exc, ImportError):
        return f"its driver (Python module {exc.name!r}) is not installed" if exc.name else one_line(str(exc))
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve the host name ({exc.strerror})"
    if isinstance(exc, (ConnectionRefusedError, TimeoutError)):
        return "connection refused" if isinstance(exc, ConnectionRefusedError) else "timed out"
    if isinstance(exc, OSError) and exc.errno:
        return os.strerror(exc.errno).lower()
    lines = str(exc).strip().splitlines()
    # asyncpg errors come through SQLAlchemy as "<class 'asyncpg.exceptions.X'>: message"
    text = re.sub(r"^<class '[\w.]+'>:\s*", "", lines[0]) if lines else ""
    return one_line(text).rstrip(".") or type(exc).__name__


def database_problem(url: str, exc: BaseException) -> str:
    """Why the database at `url` cannot be used, and what to check (the password masked)."""
    if isinstance(exc, (ArgumentError, ImportError, ValueError, OverflowError)):
        hint = f"check the URL ({URL_FORMS})"
    elif isinstance(exc, socket.gaierror):
        hint = "check the host name in the URL"
    elif isinstance(exc, OSError):
        hint = "is the database server running and reachable at that host and port?"
    elif isinstance(exc, CommandError):
        hint = "is it a care-relay database, migrated by this version or an older one?"
    else:
        try:
            sqlite = db.is_sqlite(url)
        except (ArgumentError, ValueError, TypeError):
            sqlite = False
        hint = (
            "check that the path is a care-relay SQLite database that this user can read and write"
            if sqlite
            else "check the user, password and database name in the URL, and that the database exists"
        )
    reason = _reason(exc)
    with contextlib.suppress(ArgumentError, ValueError, TypeError):
        password = make_url(url).password
        if password:
            reason = reason.replace(str(password), "***")
    return f"cannot open the database at RELAY_DATABASE_URL ({safe_url(url)}): {reason}; {hint}"


async def _settle_sqlite_threads(timeout: float = 2.0) -> None:
    """Let aiosqlite's worker threads end while the event loop still runs.

    After a failed connect, aiosqlite stops its thread and posts the answer to the loop from
    that thread; if `asyncio.run` has closed the loop by then, the thread prints a traceback
    ("Event loop is closed") after our one line.
    """
    deadline = time.monotonic() + timeout
    for thread in threading.enumerate():
        if "_connection_worker_thread" in thread.name:
            while thread.is_alive() and time.monotonic() < deadline:
                await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def _opening(url: str) -> AsyncIterator[None]:
    """Turn a failure to open or migrate the database into a CliError that says what to check."""
    try:
        yield
    except DATABASE_ERRORS as exc:
        await _settle_sqlite_threads()
        raise CliError(database_problem(url, exc)) from None


def listen_problem(host: str, port: int, exc: BaseException) -> str:
    where = f"cannot listen on {host}:{port}"
    if isinstance(exc, OverflowError):
        return f"{where}: the port must be from 1 to 65535; check --port or RELAY_PORT"
    if isinstance(exc, socket.gaierror):
        return f"{where}: {_reason(exc)}; check --host or RELAY_HOST"
    code = exc.errno if isinstance(exc, OSError) else None
    if code == errno.EADDRINUSE:
        return f"{where}: address already in use; stop what holds it or choose another --port"
    if code == errno.EACCES:
        return f"{where}: permission denied; ports below 1024 need privileges, choose another --port"
    if code == errno.EADDRNOTAVAIL:
        return f"{where}: that address is not on this machine; check --host or RELAY_HOST"
    return f"{where}: {_reason(exc)}; check --host and --port (or RELAY_HOST and RELAY_PORT)"


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


# serve / db --------------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    from relay.app import create_app
    from relay.web import server

    settings = settings_mod.load(dev=args.dev)
    host = args.host or settings.relay_host
    port = args.port or settings.relay_port
    # without RELAY_PUBLIC_BASE_URL (dev), links follow the address actually listened on
    settings = settings.model_copy(update={"relay_host": host, "relay_port": port})
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    # Drivers log statement parameters at DEBUG: phone numbers must never reach a log.
    for noisy in ("aiohttp.access", "aiosqlite", "sqlalchemy.engine", "asyncpg"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # Open and migrate the database first, so that a bad RELAY_DATABASE_URL is one clear line
    # (the app's own start-up then finds nothing to migrate).
    asyncio.run(_upgrade(settings))
    app = create_app(settings)
    if args.dev:
        app.on_startup.append(_seed_demo)
    # on_startup runs the storage (cleanup_ctx) first, then the handler above, then this:
    # a failure before it is the database's, one after it is the listening socket's.
    started = False

    async def mark_started(_app: web.Application) -> None:
        nonlocal started
        started = True

    app.on_startup.append(mark_started)
    try:
        # the banner prints once the socket listens, so a failure to bind is not announced as a start
        banner = (lambda: _print_dev_banner(settings, host, port)) if args.dev else None
        server.run(app, host, port, on_listening=banner)
    except DATABASE_ERRORS as exc:
        if not started:
            raise CliError(database_problem(settings.relay_database_url, exc)) from None
        if isinstance(exc, (OSError, OverflowError)):
            raise CliError(listen_problem(host, port, exc)) from None
        raise
    return 0


async def _seed_demo(app: web.Application) -> None:
    from relay import directory
    from relay.state import ENGINE, WRITER

    if await directory.seed_demo_directory(app[WRITER], app[ENGINE]):
        print(
            "dev mode: the directory was empty; seeded agent 'ana' (console, group care-circle)"
            " and a grant for actor:raz (panic.ui, status.set -> care-circle)",
            flush=True,
        )


def _print_dev_banner(settings: Settings, host: str, port: int) -> None:
    print(
        "\n".join(
            [
                f"care-relay (dev) listening on http://{host}:{port}",
                f"  database:     {safe_url(settings.relay_database_url)}",
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
    url = settings.relay_database_url
    async with _opening(url):
        engine = db.create_engine(url)
        try:
            await db.upgrade(engine)
        finally:
            await engine.dispose()


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    settings = settings_mod.load(serving=False)
    asyncio.run(_upgrade(settings))
    print("database is up to date")
    return 0


# directory, consent, inbox ---------------------------------------------------------


@contextlib.asynccontextmanager
async def _storage(settings: Settings) -> AsyncIterator[tuple[Any, Any]]:
    """The database as a command uses it: migrated first, written through the writer."""
    from inbox.writer import Writer

    url = settings.relay_database_url
    async with _opening(url):
        engine = db.create_engine(url)
        writer = Writer(url, engine)
        try:
            await db.upgrade(engine)
            await writer.start()
        except BaseException:
            with contextlib.suppress(Exception):
                await writer.close()
            await engine.dispose()
            raise
    try:
        yield engine, writer
    finally:
        await writer.close()
        await engine.dispose()


def _run(action: Callable[[Any, Any], Awaitable[Any]]) -> Any:
    settings = settings_mod.load(serving=False)

    async def go() -> Any:
        async with _storage(settings) as (engine, writer):
            return await action(engine, writer)

    return asyncio.run(go())


def print_table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    """Rows as an aligned text table (lists joined with commas, None as '-'), each cell on one line.

    Cells hold text senders chose (event ids, names): control and bidi characters are
    taken out so that none can retitle, clear or rewrite the operator's terminal.
    """

    def cell(value: Any) -> str:
        if value is None or value == []:
            return "-"
        if isinstance(value, list):
            return one_line(",".join(str(v) for v in value))
        return one_line(str(value))

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
    print_table(
        agents,
        ["id", "display", "groups", "channels", "slack_user", "phone", "whatsapp", "quiet_hours", "tz", "active"],
    )
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
    print_table(
        grants,
        ["id", "subject", "scope", "groups", "channels", "expires_at", "by", "granted_at", "revoked_at", "revoked_by"],
    )
    return 0


def cmd_consent_revoke(args: argparse.Namespace) -> int:
    from relay import directory

    grant = _run(lambda engine, writer: directory.revoke_consent(writer, args.grant_id, args.by))
    print(f"revoked {grant['id']} ({grant['subject']}) by {grant['revoked_by']}")
    return 0


def cmd_inbox(args: argparse.Namespace) -> int:
    from inbox import store
    from relay.model import iso

    statuses = ["invited", "acked"] if args.open else []
    rows = _run(lambda engine, writer: store.inbox_page(engine, statuses=statuses, limit=args.limit))
    for row in rows:
        row["received_at"] = iso(row["received_at"])
        del row["row"]
    if args.json:
        print(json.dumps(rows, indent=2))  # ASCII: C1 and bidi characters escaped too, not only C0
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
    sender = SENDERS[source]
    configured = sender.secrets(settings)
    if configured:
        return configured[0]
    # The dev server keeps generated secrets here; emit reads them, it never creates them.
    dev = settings_mod.read_env_file(settings_mod.DEV_SECRETS_FILE)
    value = dev.get(sender.secrets_env, "")
    return value.split(",")[-1].strip() or None


def freshen(source: str, payload: dict[str, Any], now: datetime) -> dict[str, Any]:
    """A fresh id, timestamp and nonce, so each emit is a new event."""
    return SENDERS[source].freshen(payload, now)


def signed_request(source: str, payload: dict[str, Any], secret: str, now: int) -> tuple[bytes, dict[str, str]]:
    body = dumps(payload)
    headers = {"Content-Type": "application/json"}
    headers.update(SENDERS[source].sign(body, secret, ts=now, payload=payload))
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
    settings = settings_mod.load(serving=False)
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
        name = SENDERS[source].secrets_env
        return _fail(
            f"{name} is not set (and no {settings_mod.DEV_SECRETS_FILE} here); set it or run from the dev server's directory"
        )
    base = settings.public_base_url
    url = args.url or f"{base}/hooks/{source}"
    if not args.as_is:
        payload = freshen(source, payload, datetime.now(UTC))
    body, headers = signed_request(source, payload, secret, int(time.time()))
    try:
        status, answer = asyncio.run(_post(url, body, headers))
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        return _fail(f"could not reach {url}: {exc or type(exc).__name__}; is the relay running (make run)?")
    print(f"POST {url} -> {status}")
    print(json.dumps(answer, indent=2, ensure_ascii=False))
    if isinstance(answer, dict) and answer.get("status_url"):
        origin = url.split("/hooks/")[0] if "/hooks/" in url else base
        print(f"\nstatus: {origin}{answer['status_url']}")
    return 0 if status < 400 else 1


# parser ------------------------------------------------------------------------------

#: `inbox` has no cursor (the admin API pages by 200 with one); this bounds one listing.
INBOX_LIMIT_MAX = 10000


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="care-relay", description="A human-in-the-loop relay for care signals.")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the server (applies migrations first)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int_range(0, 65535), help="1-65535 (without it, or 0: RELAY_PORT)")
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

    inbox = sub.add_parser("inbox", help="the loops, newest first")
    inbox.add_argument("--open", action="store_true", help="only invited or acked loops")
    inbox.add_argument(
        "--limit", type=int_range(1, INBOX_LIMIT_MAX), default=50, help=f"1-{INBOX_LIMIT_MAX} (default 50)"
    )
    inbox.add_argument("--json", action="store_true")
    inbox.set_defaults(func=cmd_inbox)

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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        return _fail(str(exc))
    except RelayError as exc:
        return _relay_error(exc)
    except CliError as exc:
        return _fail(str(exc))
    except KeyboardInterrupt:
        return 130
    # Backstops: a database that fails after it opened, or anything else of these kinds.
    except (SQLAlchemyError, sqlite3.Error) as exc:
        return _fail(f"database error: {_reason(exc)}")
    except ImportError as exc:
        return _fail(f"a module is missing: {_reason(exc)}; reinstall care-relay")
    except (OSError, OverflowError) as exc:
        return _fail(_reason(exc))


if __name__ == "__main__":
    sys.exit(main())
