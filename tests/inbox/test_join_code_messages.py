"""Storage of a join code's message id (migration 0010): the schema matches the model, the upgrade keeps
the outbox and goes back, and a status callback finds the message it is about on an index."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

from inbox import db, inbound
from tests.conftest import BOTH_DATABASES
from tests.support import PlanRecorder, fresh_sqlite, model_differences


@BOTH_DATABASES
async def test_migration_0010_adds_the_message_id_to_the_outbox_and_goes_back(database_url: str) -> None:
    """0009 → 0010 keeps the outbox's rows (with no message id); no difference from inbox/models.py for
    `outbox`; down to 0009 and up again gives the same."""
    from alembic import command

    engine = db.create_engine(database_url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(lambda c: command.upgrade(db._alembic_config(c), "0009"))
            await conn.execute(
                text(
                    "INSERT INTO outbox (kind, payload, status, attempts, next_attempt_at, created_at, updated_at)"
                    ' VALUES (\'verify\', \'{"agent_id": "ana", "channel": "whatsapp"}\', \'sent\', 1, 0, 0, 0)'
                )
            )
        for _ in range(2):
            await db.upgrade(engine)
            async with engine.connect() as conn:
                kept = (await conn.execute(text("SELECT kind, status, provider_id FROM outbox"))).all()
                diff = await model_differences(conn, "outbox")
            assert [tuple(r) for r in kept] == [("verify", "sent", None)]
            assert diff == []
            async with engine.begin() as conn:
                await conn.run_sync(lambda c: command.downgrade(db._alembic_config(c), "0009"))
    finally:
        await engine.dispose()


async def test_a_status_callback_finds_its_message_on_an_index(tmp_path: Any) -> None:
    """SQLite plans: the invitation sent as the sid on its index, else the join code on the outbox's partial
    index of message ids; never a scan of either table."""
    async with fresh_sqlite(tmp_path) as conn:
        tx = PlanRecorder(conn)
        assert inbound.record_status(tx, "SM" + "0" * 32, "failed", "outside_session", False, 0) is None
        plans = tx.plans()
    assert "ix_invitation_provider_id (provider_id=?)" in plans[0], plans
    assert "ix_outbox_provider_id (provider_id=?)" in plans[1], plans
    assert not any("SCAN invitation" in p or "SCAN outbox" in p for p in plans), plans
