"""Storage of console sign-outs (migration 0009): the schema matches the model, the upgrade and downgrade
run both ways, each console request's look-up reads the primary key, and expired sign-outs are purged."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

from inbox import console_sessions, db, open_inbox
from tests.conftest import BOTH_DATABASES
from tests.support import PlanRecorder, fresh_sqlite, model_differences

HOUR_MS = 3_600_000


@BOTH_DATABASES
async def test_migration_0009_creates_what_the_model_declares_and_goes_back(database_url: str) -> None:
    """`console_session_end` and its index: no difference from inbox/models.py; down to 0008 drops it, up again restores it."""
    from alembic import command

    engine = db.create_engine(database_url)
    try:
        await db.upgrade(engine)
        async with engine.begin() as conn:
            await conn.run_sync(lambda c: command.downgrade(db._alembic_config(c), "0008"))
            tables = await conn.run_sync(lambda c: __import__("sqlalchemy").inspect(c).get_table_names())
        assert "console_session_end" not in tables
        await db.upgrade(engine)
        async with engine.connect() as conn:
            diff = await model_differences(conn, "console_session_end")
    finally:
        await engine.dispose()
    assert diff == []


async def test_a_sign_out_is_kept_until_the_cookie_would_have_expired(tmp_path: Any) -> None:
    """An ended session reads as ended (once, however often it is signed out of); a later sign-out purges the
    ones whose cookies have expired since; a session never signed out of is not ended."""
    storage = await open_inbox(f"sqlite+aiosqlite:///{tmp_path}/ends.db")
    try:
        writer, reader = storage.writer, storage.reader
        await writer.run(lambda tx: console_sessions.end_session(tx, "s1", admin="ann", at=0, until=8 * HOUR_MS))
        await writer.run(lambda tx: console_sessions.end_session(tx, "s1", admin="ann", at=1, until=8 * HOUR_MS + 1))
        assert await reader.run(console_sessions.session_ended, "s1")
        assert not await reader.run(console_sessions.session_ended, "s2")
        later = 9 * HOUR_MS
        await writer.run(lambda tx: console_sessions.end_session(tx, "s2", admin="bo", at=later, until=later + 1))
        assert not await reader.run(console_sessions.session_ended, "s1")  # its cookie has expired anyway
        assert await reader.run(console_sessions.session_ended, "s2")
        async with storage.engine.connect() as conn:
            rows = (await conn.execute(text("SELECT session_id, admin FROM console_session_end"))).all()
        assert [tuple(r) for r in rows] == [("s2", "bo")]
    finally:
        await storage.close()


async def test_the_per_request_look_up_and_the_purge_use_their_indexes(tmp_path: Any) -> None:
    """SQLite plans: a console request's look-up on the primary key, the purge on `until`'s index; no table scan."""
    async with fresh_sqlite(tmp_path) as conn:
        tx = PlanRecorder(conn)
        console_sessions.session_ended(tx, "s1")
        console_sessions.end_session(tx, "s1", admin="ann", at=0, until=1)
        plans = tx.plans()
    assert "sqlite_autoindex_console_session_end_1 (session_id=?)" in plans[0], plans
    assert "ix_console_session_end_until (until<?)" in plans[1], plans
    assert not any("SCAN console_session_end" in p for p in plans), plans
