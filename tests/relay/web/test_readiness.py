"""`/readyz` tells a load balancer whether the relay can take writes now, not only whether it can read."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

from inbox.db import sqlite_path
from tests.driver import Start, panic


@contextmanager
def write_lock_held(database_url: str) -> Iterator[None]:
    """Another process's hold on SQLite's write lock (as a backup or a long CLI write takes it)."""
    holder = sqlite3.connect(sqlite_path(database_url), isolation_level=None, timeout=30)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        yield
        holder.execute("ROLLBACK")
    finally:
        holder.close()


async def test_readiness_follows_the_writer(start: Start, database_url: str) -> None:
    """While writes fail, /readyz answers 503 unavailable with Retry-After; once a write commits again, 200."""
    relay = await start(dev=False, relay_sqlite_busy_timeout_ms=100)
    assert (await relay.get("/readyz")).status == 200
    with write_lock_held(database_url):
        assert (await relay.hook("m3", panic())).status == 503
        ready = await relay.get("/readyz")
        assert ready.status == 503 and int(ready.headers["Retry-After"]) > 0
        answer = await ready.json()
        assert answer["ok"] is False and answer["error"] == "unavailable"
        assert "write" in answer["detail"] and "OperationalError" in answer["detail"]
    assert (await relay.hook("m3", panic())).status == 202
    ready = await relay.get("/readyz")
    assert ready.status == 200 and (await ready.json())["database"] == "ready"
