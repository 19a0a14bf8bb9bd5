"""`/readyz` tells a load balancer whether the relay can take writes now, not only whether it can read."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from aiohttp.test_utils import TestClient

from inbox.db import sqlite_path
from tests.support import fixture, fresh, make_settings, signed


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


async def signal(client: TestClient) -> int:
    body, headers = signed("m3", fresh("m3", fixture("m3", "panic.ui__golden")))
    return (await client.post("/hooks/m3", data=body, headers=headers)).status


async def test_readiness_follows_the_writer(make_client: Callable[..., Any], database_url: str) -> None:
    """While writes fail, /readyz answers 503 unavailable with Retry-After; once a write commits again, 200."""
    client: TestClient = await make_client(
        make_settings(database_url, relay_sqlite_busy_timeout_ms=100), run_outbox=False
    )
    assert (await client.get("/readyz")).status == 200
    with write_lock_held(database_url):
        assert await signal(client) == 503
        ready = await client.get("/readyz")
        assert ready.status == 503 and int(ready.headers["Retry-After"]) > 0
        answer = await ready.json()
        assert answer["ok"] is False and answer["error"] == "unavailable"
        assert "write" in answer["detail"] and "OperationalError" in answer["detail"]
    assert await signal(client) == 202
    ready = await client.get("/readyz")
    assert ready.status == 200 and (await ready.json())["database"] == "ready"
