"""Reads in plain SQL, one step each: `await reader.run(job, *args)`.

A read job is a plain function `job(tx, *args) -> result` over the same `Tx` the writer's
jobs use, so a query reads the same inside a write and on a page. A job may run several
statements: on SQLite they see one snapshot; on PostgreSQL (READ COMMITTED) each statement
sees what was committed when it began.

SQLite: a job runs on the event loop, on the reader's own connection, in one read
transaction. WAL lets it read while the writer writes, and an indexed read takes tens of
microseconds, less than a hop to a thread and back (measured at about 100 µs of CPU per
status lookup); the writer runs its groups on the loop for the same reason. A WAL reader
waits for a lock only in SQLite's rare cases (another process holding the file in exclusive
mode, recovery after a crash): it waits at most READ_BUSY_MS, then the read fails as storage
being unavailable (a 503), rather than stalling the loop.
PostgreSQL: a pooled connection of the engine, through SQLAlchemy's `run_sync`.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable
from typing import Concatenate, ParamSpec, TypeVar

from sqlalchemy.ext.asyncio import AsyncEngine

from inbox.db import is_sqlite, sqlite_path
from inbox.tx import PgTx, SqliteTx, Tx

__all__ = ["READ_BUSY_MS", "Reader"]

P = ParamSpec("P")
T = TypeVar("T")
#: how long a SQLite read may wait for a lock, on the event loop.
READ_BUSY_MS = 100


class Reader:
    """Runs read jobs; `await reader.run(job, *args)` returns what `job(tx, *args)` returned."""

    def __init__(self, url: str, engine: AsyncEngine) -> None:
        self._engine = engine
        self._path = sqlite_path(url) if is_sqlite(url) else ""
        self._conn: sqlite3.Connection | None = None
        self._closed = False

    async def run(self, job: Callable[Concatenate[Tx, P], T], *args: P.args, **kwargs: P.kwargs) -> T:
        if self._closed:
            raise sqlite3.OperationalError("the reader is closed")
        if not self._path:
            async with self._engine.connect() as pooled:
                return await pooled.run_sync(lambda sync_conn: job(PgTx(sync_conn, 0), *args, **kwargs))
        conn = self._connection()
        conn.execute("BEGIN")
        try:
            result = job(SqliteTx(conn, 0), *args, **kwargs)
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")  # the job's own error is the one to report
            raise
        conn.execute("COMMIT")
        return result

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            # the busy timeout from the first statement on (the database is in WAL mode already:
            # the writer opened it first), then reads only
            conn = sqlite3.connect(
                self._path, timeout=READ_BUSY_MS / 1000, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA query_only=1")
            self._conn = conn
        return self._conn

    async def close(self) -> None:
        """Close the connection; safe to call twice."""
        self._closed = True
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(sqlite3.Error):
                conn.close()
