"""Helpers for tests: settings, signed requests built with the real signer, fixtures on disk."""

from __future__ import annotations

import http.client
import json
import os
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from inbox import db, open_inbox
from inbox.tx import SqliteTx
from receivers.aisha import signature as aisha_signature
from receivers.m3 import signature as m3_signature
from relay.keys import METRICS, WRITER
from relay.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
SHARED = ROOT.parent / "shared"
#: The signature vectors every implementation must pass: the shared original beside the
#: repository when it is there (as in CI), else the copy kept here so that any clone tests.
SHARED_VECTORS = SHARED / "vectors" / "signatures.json"
KEPT_VECTORS = ROOT / "tests" / "vectors" / "signatures.json"
VECTORS_PATH = SHARED_VECTORS if SHARED_VECTORS.exists() else KEPT_VECTORS


def vectors() -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = json.loads(VECTORS_PATH.read_text(encoding="utf-8"))["vectors"]
    return data


M3_SECRETS = ("m3_secret_current_7f1c", "m3_secret_previous_0b9e")
AISHA_SECRETS = ("aisha_secret_5d2a",)
ADMIN_TOKEN = "admin-token-for-tests"
LINK_SECRETS = ("link-key-old", "link-key-new")


def make_settings(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "relay_database_url": database_url,
        "relay_admin_tokens": (ADMIN_TOKEN,),
        "relay_link_secrets": LINK_SECRETS,
        "m3_webhook_secrets": M3_SECRETS,
        "aisha_webhook_secrets": AISHA_SECRETS,
        # the directory's addresses count as confirmed by their owners, except in the tests of
        # confirming them (tests/relay/test_verification.py), which turn this back on
        "relay_verify_addresses": False,
        # one signal, one loop: the tests of coalescing (tests/relay/test_human_paths.py) turn it back on
        "relay_coalesce": False,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


#: What `care-relay serve` outside --dev needs to start (each secret at least 16 characters).
SERVING_ENV = {
    "RELAY_ADMIN_TOKENS": "admin-token-0123456789",
    "RELAY_LINK_SECRETS": "link-secret-0123456789",
    "M3_WEBHOOK_SECRETS": "m3-secret-0123456789",
    "AISHA_WEBHOOK_SECRETS": "aisha-secret-0123456789",
    "RELAY_PUBLIC_BASE_URL": "https://relay.example.org",
    # as in make_settings: tests of other things do not wait for agents to confirm their addresses
    "RELAY_VERIFY_ADDRESSES": "false",
    # as in make_settings: each signal its own loop, except in the tests of coalescing
    "RELAY_COALESCE": "false",
}

#: Prefixes of every variable the relay reads: a subprocess under test sees only what a test sets.
SETTING_PREFIXES = ("RELAY_", "M3_", "AISHA_", "SLACK_", "TWILIO_", "CARE_")


def clean_env(**values: str) -> dict[str, str]:
    """This process's environment without any relay setting, plus `values`."""
    return {**{k: v for k, v in os.environ.items() if not k.upper().startswith(SETTING_PREFIXES)}, **values}


def run_cli(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`care-relay ARGS` as a user runs it, in `cwd` (where `.env` and `var/` are looked for)."""
    return subprocess.run(
        [sys.executable, "-m", "relay.cli", *args],
        check=False,
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def cli(env: dict[str, str], cwd: Path, *args: str, ok: bool = True) -> str:
    """`care-relay ARGS`: what it printed, after it succeeded; with `ok=False`, its error output."""
    done = run_cli(env, cwd, *args)
    if ok:
        assert done.returncode == 0, done.stderr
    return done.stdout if ok else done.stderr


@contextmanager
def dev_server(env: dict[str, str], cwd: Path, *args: str) -> Iterator[subprocess.Popen[str]]:
    """`care-relay serve --dev` in `cwd` (on a port the system picks, unless `env` names RELAY_PORT),
    from its banner until the block ends.

    The banner prints once the database is open and the socket listens; a server that does not
    get there within a minute is stopped, so a failure ends the test instead of hanging it.
    """
    log_path = cwd / "serve.log"
    with log_path.open("w") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "relay.cli", "serve", "--dev", *args],
            env={"RELAY_PORT": "0", **env},
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
        watchdog = threading.Timer(60, server.kill)
        watchdog.start()
        try:
            assert server.stdout is not None
            if not any("listening on" in line for line in server.stdout):
                raise AssertionError(f"serve --dev did not start: {log_path.read_text()}")
            yield server
        finally:
            watchdog.cancel()
            server.terminate()
            server.wait(30)
            if server.stdout is not None:
                server.stdout.close()


def fixture(source: str, name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / source / f"{name}.json").read_text(encoding="utf-8"))


def body_of(payload: Any) -> bytes:
    if isinstance(payload, bytes):
        return payload
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def fresh(source: str, payload: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A copy with a new event id (and nonce) stamped now, so each call is a new event."""
    from datetime import UTC, datetime

    out = json.loads(json.dumps(payload))
    out["ts"] = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    if source == "m3":
        out["id"] = "evt_" + uuid.uuid4().hex
        out.setdefault("security", {})["nonce"] = uuid.uuid4().hex
    else:
        out["event_id"] = str(uuid.uuid4())
    out.update(changes)
    return out


def m3_headers(body: bytes, event_type: str, *, secret: str = M3_SECRETS[0], ts: int | None = None) -> dict[str, str]:
    headers = {"Content-Type": "application/json"}
    headers.update(m3_signature.sign(body, secret, ts=int(time.time()) if ts is None else ts, event_type=event_type))
    return headers


def aisha_headers(
    body: bytes, event_id: str, *, secret: str = AISHA_SECRETS[0], ts: int | None = None, body_signed: bool = False
) -> dict[str, str]:
    headers = {"Content-Type": "application/json"}
    stamp = None if body_signed else (int(time.time()) if ts is None else ts)
    headers.update(aisha_signature.sign(body, secret, ts=stamp, event_id=event_id))
    return headers


def signed(source: str, payload: Any, **kwargs: Any) -> tuple[bytes, dict[str, str]]:
    """Body bytes and signed headers for a payload, as a well-behaved sender sends them."""
    body = body_of(payload)
    if source == "m3":
        return body, m3_headers(body, str(payload.get("type")) if isinstance(payload, dict) else "panic.ui", **kwargs)
    event_id = str(payload.get("event_id")) if isinstance(payload, dict) else ""
    return body, aisha_headers(body, event_id, **kwargs)


async def query(app: web.Application, statement: str, *params: Any) -> list[tuple[Any, ...]]:
    """Run one statement on the app's own writer; a SELECT's rows as tuples, else []."""

    def job(tx: Any) -> list[tuple[Any, ...]]:
        cursor = tx.execute(statement, params)
        return [tuple(r) for r in cursor.fetchall()] if statement.lstrip().upper().startswith("SELECT") else []

    rows: list[tuple[Any, ...]] = await app[WRITER].run(job)
    return rows


async def invitation_of(app: web.Application, event_id: str) -> int:
    """The id of the one invitation of the one signal with this event id."""
    ((found,),) = await query(
        app,
        "SELECT invitation.id FROM invitation JOIN signal ON signal.id = invitation.signal_id"
        " WHERE signal.event_id = ?",
        event_id,
    )
    return int(found)


@contextmanager
def refused_port() -> Iterator[int]:
    """A loopback port that refuses connections for as long as the block runs.

    The port is held bound but never listened on, so nothing else (another test, another
    process, a well-known service such as discard on port 9) can be answering on it, and no
    outgoing socket can take it as its own port meanwhile: a connection to it is refused at once.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as held:
        held.bind(("127.0.0.1", 0))
        yield held.getsockname()[1]


class ServerThread:
    """The real app served on a loopback port from its own thread and event loop.

    For tests that are synchronous by nature: hypothesis, and CLI commands run as
    subprocesses against a running server.
    """

    def __init__(self, settings: Settings) -> None:
        import asyncio
        import threading

        self._settings = settings
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self.url = ""
        self.app: Any = None

    def __enter__(self) -> ServerThread:
        import asyncio

        from aiohttp import web

        from relay.app import create_app
        from relay.web.server import make_runner

        self._thread.start()

        async def start() -> tuple[Any, str]:
            self.app = create_app(self._settings)
            runner = make_runner(self.app)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            return runner, f"http://127.0.0.1:{port}"

        self._runner, self.url = asyncio.run_coroutine_threadsafe(start(), self._loop).result(30)
        return self

    def call(self, coro: Any, timeout: float = 30) -> Any:
        """Run a coroutine on the server's loop (e.g. a store read) and return its result."""
        import asyncio

        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        """One HTTP request straight to the server (no proxy; header values go out as UTF-8); status and body."""
        parts = urlsplit(self.url)
        conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=15)
        try:
            conn.request(method, path, body=body, headers={k: v.encode() for k, v in (headers or {}).items()})
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def json(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        """`request`, with a body that is not bytes sent as JSON (`\\u` escapes, as any sender may send them);
        the status and the answer's JSON (None when empty, the raw bytes when it is not JSON)."""
        data = body if body is None or isinstance(body, bytes) else json.dumps(body, ensure_ascii=True).encode()
        status, raw = self.request(method, path, data, {"Content-Type": "application/json", **(headers or {})})
        try:
            return status, json.loads(raw) if raw else None
        except ValueError:
            return status, raw

    def sql(self, statement: str, *params: Any) -> list[tuple[Any, ...]]:
        """Run one statement on the server's writer (see `query`)."""
        rows: list[tuple[Any, ...]] = self.call(query(self.app, statement, *params))
        return rows

    def __exit__(self, *exc: Any) -> None:
        self.call(self._runner.cleanup())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


async def model_differences(conn: Any, *tables: str) -> list[Any]:
    """Alembic's differences between the connected database (an AsyncConnection) and
    inbox/models.py, those that name one of `tables`: a migration made what the models declare
    when this is empty."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlmodel import SQLModel

    diff: list[Any] = await conn.run_sync(lambda c: compare_metadata(MigrationContext.configure(c), SQLModel.metadata))
    return [change for change in diff if any(table in repr(change) for table in tables)]


@asynccontextmanager
async def fresh_sqlite(tmp_path: Path) -> AsyncIterator[sqlite3.Connection]:
    """A new inbox (every migration applied) in `tmp_path`, opened as a plain sqlite3 connection,
    so a test can ask SQLite how it plans the inbox's statements (PlanRecorder)."""
    url = f"sqlite+aiosqlite:///{tmp_path}/plans.db"
    storage = await open_inbox(url)
    await storage.close()
    conn = sqlite3.connect(db.sqlite_path(url), isolation_level=None)
    try:
        yield conn
    finally:
        conn.close()


class PlanRecorder:
    """A SQLite `Tx` that keeps every statement it runs, so a test can ask SQLite how it plans them."""

    dialect = "sqlite"
    group = 1

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._tx = SqliteTx(conn, 1)
        self.conn = conn
        self.statements: list[tuple[str, tuple[Any, ...]]] = []

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        self.statements.append((sql, tuple(params)))
        return self._tx.execute(sql, params)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self._tx.executemany(sql, rows)

    def plans(self) -> list[str]:
        """Each statement's EXPLAIN QUERY PLAN, its steps joined with " / "."""
        return [
            " / ".join(str(r[3]) for r in self.conn.execute("EXPLAIN QUERY PLAN " + sql, params).fetchall())
            for sql, params in self.statements
        ]


def metric(app: web.Application, name: str, **labels: str) -> float:
    """One sample of the app's own registry (0 when that series was never counted)."""
    value = app[METRICS].registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


async def wrote_in_on_whatsapp(app: web.Application, *agent_ids: str) -> None:
    """These agents wrote in on WhatsApp a moment ago: their 24-hour session is open, so an
    invitation goes as free-form text (the relay's own bookkeeping, as an inbound message keeps it)."""
    from relay.keys import ADDRESSES

    for agent_id in agent_ids:
        await app[ADDRESSES].seen_on_whatsapp(agent_id)
