"""The group-commit writer: one commit for many callers, and no job takes another down."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from inbox import open_inbox
from inbox.tx import Tx
from inbox.writer import StorageUnavailableError, Writer
from tests.conftest import BOTH_DATABASES


@pytest.fixture
async def writer(database_url: str) -> AsyncIterator[Writer]:
    storage = await open_inbox(database_url)
    yield storage.writer
    await storage.close()


def insert(n: int, fail: bool = False) -> Any:
    def job(tx: Tx) -> int:
        tx.execute(
            "INSERT INTO audit (at, kind, action_origin, policy_gate_result, reason, gate_failures, detail)"
            " VALUES (?, 'test', 'care_autonomous', 'allowed', ?, '[]', '{}')",
            (n, f"job {n}"),
        )
        if fail:
            raise ValueError(f"job {n} refuses")
        return n

    return job


def count(tx: Tx) -> list[int]:
    return sorted(int(r[0]) for r in tx.execute("SELECT at FROM audit WHERE kind = 'test'").fetchall())


@BOTH_DATABASES
async def test_a_failing_job_is_rolled_back_alone(writer: Writer) -> None:
    """Ten jobs queued together, the fifth raising: nine commit, the fifth leaves nothing."""
    results = await asyncio.gather(*(writer.run(insert(n, fail=n == 5)) for n in range(10)), return_exceptions=True)
    assert next(r for r in results if isinstance(r, Exception)).args == ("job 5 refuses",)
    assert [r for r in results if not isinstance(r, Exception)] == [0, 1, 2, 3, 4, 6, 7, 8, 9]
    assert await writer.run(count) == [0, 1, 2, 3, 4, 6, 7, 8, 9]


async def test_jobs_queued_together_share_commits(writer: Writer) -> None:
    """Many concurrent callers are committed in far fewer groups than jobs."""
    await asyncio.gather(*(writer.run(insert(n)) for n in range(200)))
    assert writer.jobs_committed == 200 and writer.groups_committed < 50


async def test_closed_writer_refuses_with_storage_unavailable(writer: Writer) -> None:
    """After close, a write is refused as unavailable rather than lost silently."""
    await writer.close()
    with pytest.raises(StorageUnavailableError):
        await writer.run(insert(1))


#: a lock wait far longer than any stall of a loaded machine: a wait that held the event loop
#: would hold it this long (the lock is only released by the test, which runs on that loop)
PATIENT_BUSY_TIMEOUT_MS = 30_000


async def test_another_process_holding_the_lock_delays_but_loses_nothing(database_url: str) -> None:
    """While another connection holds SQLite's write lock, jobs wait for it (off the loop) and then commit."""
    import sqlite3
    import time

    from inbox.db import sqlite_path

    storage = await open_inbox(database_url, busy_timeout_ms=PATIENT_BUSY_TIMEOUT_MS)
    writer = storage.writer
    try:
        other = sqlite3.connect(sqlite_path(database_url), isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        pending = [asyncio.ensure_future(writer.run(insert(n))) for n in range(5)]
        started = time.monotonic()
        await asyncio.sleep(0.3)
        assert not any(p.done() for p in pending)  # waiting for the lock
        # ... and not on the loop: a lock wait there would have held this sleep for the whole busy timeout
        assert time.monotonic() - started < PATIENT_BUSY_TIMEOUT_MS / 1000 / 2
        other.execute("COMMIT")
        other.close()
        assert sorted(await asyncio.gather(*pending)) == [0, 1, 2, 3, 4]
        assert await writer.run(count) == [0, 1, 2, 3, 4]
    finally:
        await storage.close()
