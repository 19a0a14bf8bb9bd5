"""Shared fixtures: a real app on a real SQLite file (or PostgreSQL where marked)."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import BaseTestServer, TestClient, TestServer
from hypothesis import settings as hypothesis_settings

from relay.app import create_app
from relay.keys import SETTINGS
from relay.settings import Settings
from relay.web.server import make_runner
from tests.driver import Relay, Start
from tests.fakes.slack import FakeSlack
from tests.fakes.twilio import FakeTwilio
from tests.support import M3_SECRETS, ServerThread, clean_env, make_settings

# Property tests draw the same examples on every run (each test's own seed), so a run — CI's
# above all — passes or fails the same way every time; `HYPOTHESIS_PROFILE=explore` draws anew.
hypothesis_settings.register_profile("repeatable", derandomize=True, database=None)
hypothesis_settings.register_profile("explore", derandomize=False)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))

PG_URL = os.environ.get("TEST_POSTGRES_URL")
#: the relay's logging as `serve` sets it up, and a search of every log record and audit line for care data
pytest_plugins = ("tests.care_scan",)


async def _create_pg_database(base_url: str) -> tuple[str, Callable[[], Any]]:
    import asyncpg
    from sqlalchemy.engine import make_url

    url = make_url(base_url)
    name = f"relay_test_{uuid.uuid4().hex[:12]}"
    dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()

    async def drop() -> None:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    return url.set(database=name).render_as_string(hide_password=False), drop


@pytest.fixture
async def database_url(request: pytest.FixtureRequest, tmp_path: Any) -> AsyncIterator[str]:
    """A fresh database: SQLite by default; `indirect` param "postgres" for PostgreSQL."""
    kind = getattr(request, "param", "sqlite")
    if kind == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path}/relay.db"
        return
    if not PG_URL:
        pytest.skip("TEST_POSTGRES_URL is not set (no PostgreSQL here)")
    url, drop = await _create_pg_database(PG_URL)
    try:
        yield url
    finally:
        await drop()


@contextmanager
def fresh_database(kind: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A fresh database for a server outside pytest's event loop (module-scoped): "sqlite" or "postgres"."""
    if kind == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('db')}/relay.db"
        return
    if not PG_URL:
        pytest.skip("TEST_POSTGRES_URL is not set (no PostgreSQL here)")
    url, drop = asyncio.run(_create_pg_database(PG_URL))
    try:
        yield url
    finally:
        asyncio.run(drop())


BOTH_DATABASES = pytest.mark.parametrize(
    "database_url", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(database_url)


class Clock:
    """A settable wall clock for the app (Unix seconds); real time unless set."""

    def __init__(self) -> None:
        self.fixed: float | None = None

    def __call__(self) -> float:
        import time

        return time.time() if self.fixed is None else self.fixed


@pytest.fixture
def clock() -> Clock:
    return Clock()


class RelayTestServer(TestServer):
    """pytest-aiohttp's test server, listening through the relay's own server (relay/web/server.py)."""

    async def _make_runner(self, **kwargs: Any) -> web.AppRunner:
        return make_runner(self.app, **kwargs)


@pytest.fixture
def aiohttp_client(aiohttp_client: Any) -> Callable[..., Any]:
    """pytest-aiohttp's `aiohttp_client`, serving the relay as `care-relay serve` does
    (the providers' fakes are other apps: they keep aiohttp's plain test server)."""

    async def start(
        app: web.Application | BaseTestServer, *, server_kwargs: dict[str, Any] | None = None, **kwargs: Any
    ) -> TestClient:
        if isinstance(app, web.Application) and SETTINGS in app:
            app = RelayTestServer(app, **(server_kwargs or {}))
        return await aiohttp_client(app, **kwargs)

    return start


@pytest.fixture
async def make_client(aiohttp_client: Any, clock: Clock) -> Callable[..., Any]:
    """Start the real app with the given settings and return a test client."""

    async def start(settings: Settings, *, run_outbox: bool = True) -> TestClient:
        return await aiohttp_client(create_app(settings, clock=clock, run_outbox=run_outbox))

    return start


@pytest.fixture
async def client(make_client: Callable[..., Any], settings: Settings) -> TestClient:
    return await make_client(settings)


@pytest.fixture
def start(aiohttp_client: Any, database_url: str, clock: Clock) -> Start:
    """Start the real app (dev mode: the console channel) on this test's database, as a `Relay` to drive.

    The outbox is driven by hand (`Relay.drain`) unless `run_outbox=True`; `overrides` are settings.
    """

    async def run(*, run_outbox: bool = False, dev: bool = True, **overrides: Any) -> Relay:
        settings = make_settings(database_url, dev=dev, **overrides)
        return Relay(await aiohttp_client(create_app(settings, clock=clock, run_outbox=run_outbox)))

    return run


@pytest.fixture
async def relay(start: Start) -> Relay:
    """A started relay (dev mode: the console channel; the outbox driven by hand) on this test's database."""
    return await start()


@pytest.fixture
async def served(start: Start) -> Relay:
    """A started relay as `care-relay serve` runs it outside dev mode: no console channel, the outbox worker running."""
    return await start(dev=False, run_outbox=True)


@pytest.fixture
def running(tmp_path: Path) -> Iterator[tuple[ServerThread, dict[str, str]]]:
    """A dev server on a real SQLite file in its own thread, and the environment a CLI run against it needs."""
    url = f"sqlite+aiosqlite:///{tmp_path}/relay.db"
    with ServerThread(make_settings(url, dev=True)) as server:
        env = clean_env(
            RELAY_DATABASE_URL=url, RELAY_PUBLIC_BASE_URL=server.url, M3_WEBHOOK_SECRETS=",".join(M3_SECRETS)
        )
        yield server, env


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    """The local fake of Slack, listening (the real SDK is pointed at it)."""
    async with FakeSlack() as server:
        yield server


@pytest.fixture
async def twilio() -> AsyncIterator[FakeTwilio]:
    """The local fake of Twilio, listening (the real SDK is pointed at it)."""
    async with FakeTwilio() as server:
        yield server
