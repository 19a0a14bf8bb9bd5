"""Transactions as a write job sees them, on SQLite and on PostgreSQL.

A job runs SQL through `Tx.execute` with qmark `?` placeholders, whatever the database;
the PostgreSQL adapter translates them to `$n`. A session opens, commits and rolls back
the transaction a group of jobs shares (`inbox.writer.Writer` drives it).
"""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Sequence
from typing import Any, Protocol


class Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...


class Tx(Protocol):
    dialect: str
    group: int

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor: ...
    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None: ...


def now_ms() -> int:
    """The current time in Unix milliseconds, as every timestamp column stores it."""
    return int(time.time() * 1000)


#: tables whose ids intake hands out itself, so that a group's rows go in with `executemany`
RESERVABLE = frozenset({"signal", "invitation", "outbox"})


def reserve_ids(tx: Tx, table: str, n: int) -> list[int]:
    """`n` ids of `table` that no other row has or will get, ascending, for rows inserted with them.

    SQLite: the writer holds the write lock for the whole transaction (`BEGIN IMMEDIATE`),
    so the ids after the largest one are free until it commits; the rows must go in before
    anything else inserts into the table in this transaction. PostgreSQL: drawn from the
    table's sequence, like a default id would be.
    """
    if table not in RESERVABLE:
        raise ValueError(f"ids of {table!r} are not reserved by hand")
    if n <= 0:
        return []
    if tx.dialect == "postgresql":
        rows = tx.execute(f"SELECT nextval(pg_get_serial_sequence('{table}', 'id')) FROM generate_series(1, ?)", (n,))
        return sorted(int(r[0]) for r in rows.fetchall())
    top = int(tx.execute(f"SELECT COALESCE(MAX(id), 0) FROM {table}").fetchone()[0])
    return list(range(top + 1, top + 1 + n))


class SqliteTx:
    dialect = "sqlite"

    def __init__(self, conn: sqlite3.Connection, group: int) -> None:
        self._conn = conn
        #: which commit group this is: per-group work (a cache check) runs once per value.
        self.group = group

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        return self._conn.execute(sql, tuple(params))

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self._conn.executemany(sql, [tuple(r) for r in rows])


_QMARK = re.compile(r"\?")
_PG_SQL_CACHE: dict[str, str] = {}


def _to_dollar(sql: str) -> str:
    cached = _PG_SQL_CACHE.get(sql)
    if cached is None:
        counter = iter(range(1, 10_000))
        cached = _QMARK.sub(lambda _m: f"${next(counter)}", sql)
        _PG_SQL_CACHE[sql] = cached
    return cached


class PgTx:
    dialect = "postgresql"

    def __init__(self, conn: Any, group: int) -> None:  # a sync-facade sqlalchemy Connection (run_sync)
        self._conn = conn
        self.group = group

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        cursor: Cursor = self._conn.exec_driver_sql(_to_dollar(sql), tuple(params))
        return cursor

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            self._conn.exec_driver_sql(_to_dollar(sql), [tuple(r) for r in rows])


class LockBusyError(Exception):
    """Another connection holds SQLite's write lock (raised only when not waiting for it)."""


class SqliteSession:
    """Transactions on the writer's own sqlite3 connection (autocommit mode, explicit BEGIN)."""

    def __init__(self, conn: sqlite3.Connection, *, wait: bool, busy_timeout_ms: int) -> None:
        self._conn = conn
        self._wait = wait
        self._busy_timeout_ms = busy_timeout_ms

    def begin(self) -> None:
        # the write lock up front: look-ups and writes are one step
        self._conn.execute(f"PRAGMA busy_timeout={self._busy_timeout_ms if self._wait else 0}")
        try:
            self._conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if not self._wait and "locked" in str(exc):
                raise LockBusyError() from None
            raise

    def wait_for_lock(self) -> None:
        self._wait = True

    def commit(self) -> None:
        self._conn.execute("COMMIT")

    def rollback(self) -> None:
        if self._conn.in_transaction:
            self._conn.execute("ROLLBACK")

    def tx(self, group: int) -> Tx:
        return SqliteTx(self._conn, group)


class PgSession:
    """Transactions on a pooled PostgreSQL connection, seen through `run_sync`."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn
        self._trans: Any = None

    def begin(self) -> None:
        self._trans = self._conn.begin()

    def wait_for_lock(self) -> None:
        pass  # PostgreSQL waits for row locks by itself

    def commit(self) -> None:
        self._trans.commit()

    def rollback(self) -> None:
        if self._trans is not None and self._trans.is_active:
            self._trans.rollback()

    def tx(self, group: int) -> Tx:
        return PgTx(self._conn, group)
