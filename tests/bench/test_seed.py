"""The bench's seeded inboxes read back through the relay's own read code as they were planned."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from bench.seed import loops_of, plan, seed_directory, seed_history
from inbox import open_inbox
from relay.views import Views

SIZE = 200
END_MS = 1_767_780_000_000  # a fixed "now": the same plan every time


@pytest.fixture
async def seeded(tmp_path: Path) -> Path:
    database = tmp_path / "seeded.db"
    await seed_directory(database)
    seed_history(database, SIZE, end_ms=END_MS)
    return database


async def test_each_status_reads_back_as_seeded(seeded: Path) -> None:
    """A done, an acked and an invited loop show their status, invitations, acks and done."""
    loops = list(plan(SIZE, end_ms=END_MS))
    inbox = await open_inbox(f"sqlite+aiosqlite:///{seeded}")
    try:
        views = Views(inbox.reader)
        for status in ("done", "acked", "invited"):
            loop = next(s for s in loops if s.status == status)
            view = await views.event_status(loop.event_id, "m3")
            assert view["status"] == status
            assert view["invitations"] == [{"agent": a, "channel": "slack", "status": "sent"} for a in loop.agents]
            assert [a["by"]["id"] for a in view["acks"]] == ([] if status == "invited" else [loop.agents[0]])
            assert (view["done"] or {}).get("by", {}).get("id") == (loop.agents[0] if status == "done" else None)
    finally:
        await inbox.close()


async def test_every_signal_invites_its_group_and_open_codes_are_unique(seeded: Path) -> None:
    """Every planned signal is stored with 1-3 invitations, and no agent holds an open code twice."""
    loops = list(plan(SIZE, end_ms=END_MS))
    stored = loops_of(seeded, [s.event_id for s in loops])
    assert len(stored) == SIZE
    assert all(len(stored[s.event_id][1]) == len(s.agents) and 1 <= len(s.agents) <= 3 for s in loops)
    with sqlite3.connect(seeded) as conn:
        repeated = conn.execute(
            "SELECT i.agent_id, i.code, COUNT(*) FROM invitation i JOIN signal s ON s.id = i.signal_id"
            " WHERE s.status IN ('invited', 'acked') GROUP BY i.agent_id, i.code HAVING COUNT(*) > 1"
        ).fetchall()
        held = conn.execute(
            "SELECT COUNT(*) FROM reply_code r JOIN invitation i ON i.id = r.invitation_id"
            " JOIN signal s ON s.id = i.signal_id WHERE s.status IN ('invited', 'acked') AND r.code = i.code"
        ).fetchone()[0]
        open_invitations = conn.execute(
            "SELECT COUNT(*) FROM invitation i JOIN signal s ON s.id = i.signal_id WHERE s.status IN ('invited', 'acked')"
        ).fetchone()[0]
    assert repeated == []
    assert held == open_invitations > 0  # as intake keeps them: every open invitation holds its code
