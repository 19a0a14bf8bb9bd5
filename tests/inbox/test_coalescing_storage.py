"""Storage of the human paths (migration 0006): the schema matches the models, and the look-ups
intake and the status document make per signal read an index, never the history."""

from __future__ import annotations

from typing import Any

from inbox import db, invitations, signals
from tests.conftest import BOTH_DATABASES
from tests.support import PlanRecorder, fresh_sqlite, model_differences

TABLES = ("signal", "agent", "invitation")


@BOTH_DATABASES
async def test_migration_0006_creates_what_the_models_declare(database_url: str) -> None:
    """`away`, `subject_key`, `joined_to`, `invited_by` and their indexes: no difference from inbox/models.py."""
    engine = db.create_engine(database_url)
    try:
        await db.upgrade(engine)
        async with engine.connect() as conn:
            diff = await model_differences(conn, *TABLES)
    finally:
        await engine.dispose()
    assert diff == []


async def test_the_open_loop_and_joined_look_ups_use_their_indexes(tmp_path: Any) -> None:
    """SQLite plans: the open loop about a subject on the partial index of open loops, a loop's
    joined signals on theirs, the invitations to update on the signal's; no table scan."""
    async with fresh_sqlite(tmp_path) as conn:
        tx = PlanRecorder(conn)
        signals.open_loop(tx, "ab" * 32)
        signals.joined_to_loop(tx, 1)
        invitations.to_update_on_join(tx, 1)
        plans = tx.plans()
    assert "ix_signal_open_subject (subject_key=?)" in plans[0]
    assert "ix_signal_joined_to (joined_to=?)" in plans[1]
    assert "sqlite_autoindex_invitation_1 (signal_id=?)" in plans[2]  # the unique (signal_id, agent_id)
    assert not any("SCAN signal" in p or "SCAN invitation" in p for p in plans), plans
