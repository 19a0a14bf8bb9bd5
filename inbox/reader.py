"""Reads in plain SQL, one thread hop each: `await reader.run(job, *args)`.

A read job is a plain function `job(tx, *args) -> result` over the same `Tx` the writer's
jobs use, so a query reads the same inside a write and on a page. A job may run several
statements; they see one snapshot.

SQLite: jobs run on a small pool of threads, each with its own connection (WAL lets them
read while the writer writes), in one read transaction per job; a status lookup is one
hop to a thread and back, instead of a hop per statement, cursor and pool check-in.
PostgreSQL: a pooled connection of the engine, through SQLAlchemy's `run_sync`.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Concatenate, ParamSpec, TypeVar

from sqlalchemy.ext.asyncio import AsyncEngine

from inbox.db import apply_sqlite_pragmas, is_sqlite, sqlite_path
from inbox.tx import PgTx, SqliteTx, Tx

__all__ = ["READ_THREADS", "Reader"]

P = ParamSpec("P")
T = TypeVar("T")
#: SQLite reader threads: reads of several requests overlap while one waits on the disk.
READ_THREADS = 4


class Reader:
    """Runs read jobs; `await reader.run(job, *args)` returns what `job(tx, *args)` returned."""

    def __init__(self, url: str, engine: AsyncEngine, *, threads: int = READ_THREADS) -> None:
        self._engine = engine
        self._path = sqlite_path(url) if is_sqlite(url) else ""
        self._executor = (
            ThreadPoolExecutor(max_workers=threads, thread_name_prefix="inbox-reader") if self._path else None
        )
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._closed = False

    async def run(self, job: Callable[Concatenate[Tx, P], T], *args: P.args, **kwargs: P.kwargs) -> T:
        if self._closed:
            raise sqlite3.OperationalError("the reader is closed")
        if self._executor is None:
            async with self._engine.connect() as conn:
                return await conn.run_sync(lambda sync_conn: job(PgTx(sync_conn, 0), *args, **kwargs))
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, partial(self._read, job, *args, **kwargs))

    def _read(self, job: Callable[Concatenate[Tx, P], T], *args: P.args, **kwargs: P.kwargs) -> T:
        conn = self._connection()
        conn.execute("BEGIN")
        try:
            return job(SqliteTx(conn, 0), *args, **kwargs)
        finally:
            conn.execute("COMMIT")

    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
            apply_sqlite_pragmas(conn)
            conn.execute("PRAGMA query_only=1")
            self._local.conn = conn
            with self._lock:
                self._conns.append(conn)
        return conn

    async def close(self) -> None:
        """Wait for reads in flight, then close every connection; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if self._executor is not None:
            await asyncio.get_running_loop().run_in_executor(None, partial(self._executor.shutdown, wait=True))
        with self._lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            with contextlib.suppress(sqlite3.Error):
                conn.close()
