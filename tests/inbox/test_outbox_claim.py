"""The outbox claim: lapsed leases come back, rows not yet due wait, pending rows go out in the order they
came due, message updates of one invitation in order, and settled history is never read."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from typing import Any

import pytest

from inbox import db, open_inbox, outbox
from inbox.tx import Tx
from inbox.writer import Writer
from tests.conftest import BOTH_DATABASES
from tests.support import PlanRecorder

NOW = 1_900_000_000_000
LEASE = 60_000
KINDS = ("invite", "update", "callback")


@pytest.fixture
async def writer(database_url: str) -> AsyncIterator[Writer]:
    storage = await open_inbox(database_url)
    yield storage.writer
    await storage.close()


#: (id, kind, ref_id, status, next_attempt_at, lease_until)
ROWS = [
    (1, "invite", 1, "pending", NOW - 10, None),  # due
    (2, "invite", 2, "pending", NOW + 1_000, None),  # not yet due
    (3, "invite", 3, "sending", NOW - 90_000, NOW - 1),  # a dead worker's lapsed lease
    (4, "invite", 4, "sending", NOW - 1_000, NOW + 1_000),  # a live lease
    (5, "invite", 5, "sent", NOW - 99_000, None),
    (6, "update", 7, "pending", NOW - 5, None),  # invitation 7's first update
    (7, "update", 7, "pending", NOW - 50, None),  # its second: due earlier, but waits for the first
    (8, "callback", 9, "pending", NOW - 100, None),  # due first of all
    (9, "forward", 9, "pending", NOW - 100, None),  # a kind not asked for
]


def _seed(tx: Tx) -> None:
    tx.executemany(
        "INSERT INTO outbox (id, kind, ref_id, payload, status, attempts, next_attempt_at, lease_until,"
        " created_at, updated_at) VALUES (?, ?, ?, '{}', ?, 0, ?, ?, 0, 0)",
        ROWS,
    )


def _claim(limit: int, now: int = NOW) -> Any:
    def job(tx: Tx) -> list[int]:
        return [w.id for w in outbox.claim(tx, now=now, lease_ms=LEASE, limit=limit, kinds=KINDS)]

    return job


def _state(tx: Tx) -> dict[int, tuple[str, int, int | None]]:
    rows = tx.execute("SELECT id, status, attempts, lease_until FROM outbox").fetchall()
    return {int(r[0]): (str(r[1]), int(r[2]), None if r[3] is None else int(r[3])) for r in rows}


@BOTH_DATABASES
async def test_claim_takes_lapsed_leases_and_due_rows_only(writer: Writer) -> None:
    """Due pending rows and lapsed leases of the kinds asked for are leased; the rest stay as they were."""
    await writer.run(_seed)
    assert await writer.run(_claim(10)) == [1, 3, 6, 8]
    state = await writer.run(_state)
    for claimed in (1, 3, 6, 8):
        assert state[claimed] == ("sending", 1, NOW + LEASE)
    assert state[2] == ("pending", 0, None) and state[4] == ("sending", 0, NOW + 1_000)
    assert state[5] == ("sent", 0, None) and state[7] == ("pending", 0, None) and state[9] == ("pending", 0, None)


@BOTH_DATABASES
async def test_lapsed_leases_first_then_pending_rows_in_the_order_they_came_due(writer: Writer) -> None:
    """Under a limit: the lapsed lease, then the earliest due (not the lowest id); the next claim takes the next due."""
    await writer.run(_seed)
    assert await writer.run(_claim(2)) == [3, 8]
    assert await writer.run(_claim(1)) == [1]
    assert await writer.run(_claim(5)) == [6]
    # row 7 waits while invitation 7's first update is unsettled, whatever its own due time
    assert await writer.run(lambda tx: outbox.finish(tx, outbox.Work(6, "update", 7, {}, 1), NOW))
    assert await writer.run(_claim(5)) == [7]
    # later: row 2 came due and row 4's lease lapsed; the rows claimed above hold live leases
    assert await writer.run(_claim(5, now=NOW + 2_000)) == [2, 4]


async def test_claim_plans_read_the_due_index_not_the_settled_rows(tmp_path: Any) -> None:
    """With 100 k sent rows: both halves of the claim search ix_outbox_due, and no statement sorts the backlog."""
    url = f"sqlite+aiosqlite:///{tmp_path}/plans.db"
    storage = await open_inbox(url)
    await storage.close()
    conn = sqlite3.connect(db.sqlite_path(url), isolation_level=None)
    try:
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO outbox (kind, ref_id, payload, status, attempts, next_attempt_at, created_at, updated_at)"
            " VALUES ('invite', ?, '{}', 'sent', 1, ?, 0, 0)",
            [(n, n) for n in range(100_000)],
        )
        conn.execute(
            "INSERT INTO outbox (kind, ref_id, payload, status, attempts, next_attempt_at, created_at,"
            " updated_at) VALUES ('invite', 1, '{}', 'pending', 0, 5, 0, 0)"
        )
        conn.execute("COMMIT")
        conn.execute("ANALYZE")  # the statistics a long-running database has: settled rows dominate
        tx = PlanRecorder(conn)
        assert [w.ref_id for w in outbox.claim(tx, now=NOW, lease_ms=LEASE, limit=10, kinds=KINDS)] == [1]
        lapsed, due = tx.plans()
    finally:
        conn.close()
    assert "SEARCH outbox USING INDEX ix_outbox_due (status=?)" in lapsed
    assert "SEARCH outbox USING INDEX ix_outbox_due (status=? AND next_attempt_at<?)" in due
    assert "TEMP B-TREE" not in due and "SCAN outbox" not in due and "SCAN outbox" not in lapsed


@BOTH_DATABASES
async def test_only_the_current_claim_settles_a_row(writer: Writer) -> None:
    """A claim whose lease lapsed and was taken again cannot settle the row: the later claim does."""
    await writer.run(_seed)

    def claim(now: int) -> Any:
        def job(tx: Tx) -> dict[int, outbox.Work]:
            return {w.id: w for w in outbox.claim(tx, now=now, lease_ms=LEASE, limit=1, kinds=("invite",))}

        return job

    first = (await writer.run(claim(NOW)))[3]  # row 3: the lapsed lease, claimed first
    later = (await writer.run(claim(NOW + LEASE + 1)))[3]  # its lease lapsed again: taken over
    assert (first.attempts, later.attempts) == (1, 2)
    assert not await writer.run(lambda tx: outbox.finish(tx, first, NOW))
    assert (await writer.run(_state))[3][0:2] == ("sending", 2)
    assert not await writer.run(lambda tx: outbox.fail(tx, first, error="late", now=NOW))
    assert await writer.run(lambda tx: outbox.reschedule(tx, later, at=NOW + 5, error="HTTP 503", now=NOW))
    assert (await writer.run(_state))[3] == ("pending", 2, None)
