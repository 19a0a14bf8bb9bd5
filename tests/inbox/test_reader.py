"""The reader: read jobs in plain SQL, one snapshot each, that never break on an odd stored row."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator

import pytest

from inbox import Inbox, audit, open_inbox, signals
from inbox.tx import Tx
from tests.conftest import BOTH_DATABASES

pytestmark = BOTH_DATABASES


@pytest.fixture
async def inbox(database_url: str) -> AsyncIterator[Inbox]:
    storage = await open_inbox(database_url)
    yield storage
    await storage.close()


def _signal(tx: Tx, event_id: str, *, gate_failures: str = "[]") -> None:
    tx.execute(
        "INSERT INTO signal (source, event_id, type, subject, status, body, body_sha256, reason, action_origin,"
        " origin_uncertain, policy_gate_result, gate_failures, received_at, updated_at)"
        " VALUES ('m3', ?, 'panic.ui', 'actor:raz', 'pending_consent', NULL, 'x', 'r', 'care_autonomous', 0,"
        " 'blocked', ?, 1, 1)",
        (event_id, gate_failures),
    )


async def test_a_read_job_returns_what_the_writer_committed(inbox: Inbox) -> None:
    await inbox.writer.run(lambda tx: _signal(tx, "evt_1", gate_failures='["consent"]'))
    (found,) = await inbox.reader.run(signals.find_signals, "evt_1", "m3")
    assert (found.event_id, found.status, found.gate_failures) == ("evt_1", "pending_consent", ["consent"])
    assert await inbox.reader.run(signals.find_signals, "evt_1", "aisha") == []
    assert await inbox.reader.run(signals.raw_body, found.id) is None


async def test_reads_run_side_by_side_and_each_sees_one_snapshot(inbox: Inbox) -> None:
    await inbox.writer.run(lambda tx: _signal(tx, "evt_1"))

    def twice(tx: Tx) -> tuple[int, int]:
        first = int(tx.execute("SELECT COUNT(*) FROM signal").fetchone()[0])
        return first, int(tx.execute("SELECT COUNT(*) FROM signal").fetchone()[0])

    results = await asyncio.gather(*(inbox.reader.run(twice) for _ in range(16)))
    assert all(a == b == 1 for a, b in results)


async def test_an_odd_stored_row_reads_without_breaking(inbox: Inbox) -> None:
    """A row written by hand (a gate list that is not JSON) reads as empty rather than failing the page."""
    await inbox.writer.run(lambda tx: _signal(tx, "evt_odd", gate_failures="not json"))
    await inbox.writer.run(
        lambda tx: tx.execute(
            "INSERT INTO audit (at, kind, action_origin, policy_gate_result, reason, gate_failures, detail)"
            " VALUES (1, 'decision', 'care_autonomous', 'blocked', 'r', '{', '[1]')"
        )
    )
    (found,) = await inbox.reader.run(signals.find_signals, "evt_odd")
    assert found.gate_failures == []
    (row,) = await inbox.reader.run(audit.audit_page)
    assert (row["gate_failures"], row["detail"]) == ([], {})


async def test_the_reader_writes_nothing_and_refuses_once_closed(inbox: Inbox) -> None:
    def write(tx: Tx) -> None:
        _signal(tx, "evt_sneaky")

    if inbox.writer.sqlite:
        with pytest.raises(sqlite3.OperationalError):
            await inbox.reader.run(write)
    assert await inbox.reader.run(signals.find_signals, "evt_sneaky") == []
    await inbox.reader.close()
    with pytest.raises(sqlite3.OperationalError, match="closed"):
        await inbox.reader.run(signals.find_signals, "evt_sneaky")
