"""Engines, SQLite pragmas and migrations.

Reads go through a SQLAlchemy async engine (aiosqlite or asyncpg). Writes go through
`inbox.writer.Writer`. SQLite runs in WAL mode with `synchronous=NORMAL` and a busy
timeout; every connection gets the same pragmas.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from relay.files import private_dir, private_file, tighten

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
BUSY_TIMEOUT_MS = 5000


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


#: Files SQLite keeps beside the database; they hold the same rows (phone numbers, notes).
SIDE_FILES = ("-wal", "-shm", "-journal")


def sqlite_path(url: str) -> str:
    """The file behind a sqlite URL, ready to open and readable by its owner only.

    Missing folders are made 0700 and a missing file 0600 before SQLite opens it; SQLite
    gives -wal and -shm the database file's mode. Files an older version left open are tightened.
    """
    parsed = make_url(url)
    database = parsed.database or ""
    if database and database != ":memory:" and not parsed.query.get("uri"):
        path = Path(database)
        private_dir(path.parent)
        private_file(path)
        for suffix in SIDE_FILES:
            tighten(Path(database + suffix))
    return database


def apply_sqlite_pragmas(conn: sqlite3.Connection | Any) -> None:
    cur = conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def create_engine(url: str, *, pool_size: int = 20) -> AsyncEngine:
    """The async engine for reads (and the migration runner)."""
    if is_sqlite(url):
        sqlite_path(url)
        # hide_parameters: a database error's message must not carry the values (notes, numbers)
        engine = create_async_engine(url, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000}, hide_parameters=True)
        event.listen(engine.sync_engine, "connect", lambda dbapi_conn, _: apply_sqlite_pragmas(dbapi_conn))
        return engine
    # Prepared statements are cached per connection; a generic plan made while a table was
    # small (a seq scan) would stick as it grows. Plan each execution with its own values.
    return create_async_engine(
        url,
        hide_parameters=True,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        connect_args={"server_settings": {"plan_cache_mode": "force_custom_plan"}},
    )


def _alembic_config(connection: Connection) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


#: the PostgreSQL advisory lock migrations run under ("migr" in ASCII)
MIGRATION_LOCK = 0x6D696772


async def upgrade(engine: AsyncEngine) -> None:
    """Apply every pending migration (safe to call at each start, by several processes at once).

    On PostgreSQL the upgrade runs under a session advisory lock: processes starting together
    (replicas, `care-relay db upgrade` beside `serve`) take turns, and each one after the first
    finds the schema current. SQLite's own write lock serialises its migrations.
    """
    async with engine.connect() as conn:
        postgres = conn.dialect.name == "postgresql"
        if postgres:
            await conn.exec_driver_sql(f"SELECT pg_advisory_lock({MIGRATION_LOCK})")
            await conn.commit()  # the lock is the session's; Alembic's transaction starts after it
        try:
            async with conn.begin():
                await conn.run_sync(lambda sync_conn: command.upgrade(_alembic_config(sync_conn), "head"))
        finally:
            if postgres:
                try:
                    await conn.exec_driver_sql(f"SELECT pg_advisory_unlock({MIGRATION_LOCK})")
                    await conn.commit()
                except Exception:  # a broken session: closing it drops the lock, never pooled with it
                    await conn.invalidate()


def _is_current(connection: Connection) -> bool:
    head = ScriptDirectory.from_config(_alembic_config(connection)).get_current_head()
    return MigrationContext.configure(connection).get_current_revision() == head


async def migrations_current(engine: AsyncEngine) -> bool:
    async with engine.connect() as conn:
        return await conn.run_sync(_is_current)
