"""Migration 0011 drops two invitation indexes nothing reads: the schema matches the model, the
upgrade goes back and forth, and every read of invitations still finds them on an index."""

from __future__ import annotations

from typing import Any

from sqlalchemy import inspect

from inbox import db, invitations, lifecycle, loop_detail, signals
from tests.conftest import BOTH_DATABASES
from tests.support import PlanRecorder, fresh_sqlite, model_differences

DROPPED = {"ix_invitation_agent_created", "ix_invitation_signal_id"}


async def _invitation_indexes(conn: Any) -> set[str]:
    names: set[str] = await conn.run_sync(lambda c: {str(i["name"]) for i in inspect(c).get_indexes("invitation")})
    return names


@BOTH_DATABASES
async def test_migration_0011_drops_the_two_indexes_and_goes_back(database_url: str) -> None:
    """0010 → 0011 drops exactly the two indexes (no difference from inbox/models.py for `invitation`);
    down to 0010 they are back; up again they are gone."""
    from alembic import command

    engine = db.create_engine(database_url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(lambda c: command.upgrade(db._alembic_config(c), "0010"))
        async with engine.connect() as conn:
            before = await _invitation_indexes(conn)
        assert before >= DROPPED
        for _ in range(2):
            await db.upgrade(engine)
            async with engine.connect() as conn:
                after = await _invitation_indexes(conn)
                diff = await model_differences(conn, "invitation")
            assert after == before - DROPPED
            assert diff == []
            async with engine.begin() as conn:
                await conn.run_sync(lambda c: command.downgrade(db._alembic_config(c), "0010"))
            async with engine.connect() as conn:
                assert await _invitation_indexes(conn) == before
    finally:
        await engine.dispose()


async def test_every_read_of_invitations_still_uses_an_index(tmp_path: Any) -> None:
    """SQLite plans of the reads by signal (a loop, the inbox page, an answer's holder) and by agent
    (the hourly count): each on an index, none a scan of the table."""
    async with fresh_sqlite(tmp_path) as conn:
        conn.execute(
            "INSERT INTO signal (id, source, event_id, type, subject, status, body_sha256, reason, action_origin,"
            " origin_uncertain, policy_gate_result, gate_failures, received_at, updated_at)"
            " VALUES (1, 'm3', 'evt_1', 'panic.ui', 'actor:raz', 'invited', '', '', 'care_autonomous', 0,"
            " 'allowed', '[]', 0, 0)"
        )
        tx = PlanRecorder(conn)
        loop_detail.loop_detail(tx, 1)
        signals.inbox_page(tx)
        lifecycle.facts(tx, signal_id=1, agent_id="ana", invitation_id=None)
        invitations.recent_invites(tx, ["ana"], 0, 6)
        plans = [p for (sql, _), p in zip(tx.statements, tx.plans(), strict=True) if "invitation" in sql]
    assert plans
    assert not any("SCAN invitation" in p or "SCAN i " in p for p in plans), plans
    assert any("uq_invitation_signal_agent" in p or "sqlite_autoindex_invitation_1" in p for p in plans), plans
    assert any("ix_invitation_agent_invited" in p for p in plans), plans
