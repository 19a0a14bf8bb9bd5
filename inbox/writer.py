"""One writer for every write: jobs are queued and committed in groups.

A job is a plain function `job(tx) -> result` that runs SQL through `Tx.execute`
(qmark `?` placeholders; translated for PostgreSQL). One task takes whatever has
queued, runs the jobs in one transaction, commits, and only then resolves each
caller's future: a 202 still means committed. The next group starts as soon as the
previous commit returns; there is no fixed linger. A job that raises sends its group
down a slow path where each job runs alone, so one failing job never takes the others
with it; jobs must therefore be safe to run twice (they only touch the database and
caches they can rebuild).

SQLite: the group runs on the writer's own connection (`BEGIN IMMEDIATE`, WAL,
`synchronous=NORMAL`), on the event loop while the lock is free, on a dedicated thread
when another process holds it. WAL checkpoints run on a second connection and thread, off
the event loop, between groups: while one copies the log into the database no group
commits, so it copies all of it and the next write starts the log again from its beginning.
(Run beside the groups, a checkpoint never caught up under steady load: the log grew by
about 60 MB a second for as long as the load lasted, and every write extended the file.)
When it starts again its file is cut back to `WAL_KEPT_BYTES`.

PostgreSQL: the group runs on a pooled connection through SQLAlchemy's `run_sync`, so one
commit (one WAL flush) serves the whole group; several relay processes each run their own
writer, and the unique constraints settle their races (the loser's group takes the slow
path and sees the winner's row).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from inbox.db import BUSY_TIMEOUT_MS, apply_sqlite_pragmas, is_sqlite, sqlite_path
from inbox.tx import LockBusyError, PgSession, SqliteSession, Tx, now_ms

__all__ = [
    "MAX_GROUP",
    "MAX_QUEUE",
    "STORAGE_ERRORS",
    "BatchHandler",
    "Job",
    "StorageUnavailableError",
    "WriteFailure",
    "Writer",
]

log = logging.getLogger("care_relay.writer")
T = TypeVar("T")
MAX_GROUP = 512
MAX_QUEUE = 20_000
CHECKPOINT_EVERY_SEC = 0.25
#: the size the write-ahead log is cut back to when it starts again (journal_size_limit)
WAL_KEPT_BYTES = 64 * 1024 * 1024
#: PostgreSQL: how many times a job alone is run again after a unique violation (another replica's row)
CONFLICT_RETRIES = 3


class StorageUnavailableError(Exception):
    """The write could not be committed (full queue, locked or failing storage)."""


#: what "storage cannot take the write" looks like, wherever it surfaces.
STORAGE_ERRORS = (StorageUnavailableError, sqlite3.OperationalError, OperationalError, InterfaceError, ConnectionError)


@dataclass(frozen=True)
class WriteFailure:
    """The writer's last commit failed on storage: since when (Unix ms, the first failure in a
    row) and the error's type (never its message, which may quote a statement)."""

    since_ms: int
    error: str


Job = Callable[[Tx], T]
#: a handler for many items of one kind at once: one result (or exception instance) per item.
#: It must write nothing for an item it answers with an exception.
BatchHandler = Callable[[Tx, list[Any]], list[Any]]


@dataclass
class _Pending:
    #: the job on its own; for a batched item, the handler run for that item alone (the slow path)
    job: Job[Any]
    future: asyncio.Future[Any] = field(repr=False)
    handler: BatchHandler | None = None
    item: Any = None


def _alone(handler: BatchHandler, item: Any) -> Job[Any]:
    def job(tx: Tx) -> Any:
        (result,) = handler(tx, [item])
        if isinstance(result, Exception):
            raise result
        return result

    return job


class Writer:
    """Runs write jobs; `await writer.run(job)` returns once the job is committed.

    `failing` says whether the last commit failed on storage (readiness reports it); the
    next commit that succeeds clears it. `busy_timeout_ms`: how long a SQLite write waits
    for a lock another process holds before it fails.
    """

    def __init__(self, url: str, engine: AsyncEngine, *, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> None:
        self._url = url
        self._engine = engine
        self._busy_timeout_ms = busy_timeout_ms
        self.failing: WriteFailure | None = None
        self.sqlite = is_sqlite(url)
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue(MAX_QUEUE)
        self._task: asyncio.Task[None] | None = None
        self._checkpoint_task: asyncio.Task[None] | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._side_executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None
        self._checkpoint_conn: sqlite3.Connection | None = None
        self._closed = False
        #: held by a group while it runs and by a checkpoint while it copies: never both
        self._turn = asyncio.Lock()
        #: told how long each checkpoint held the writer, in seconds (the app's metrics)
        self.on_checkpoint: Callable[[float], None] = lambda _seconds: None
        self._groups = 0
        self.groups_committed = 0
        self.jobs_committed = 0

    async def start(self) -> None:
        if not self.sqlite:
            self._task = asyncio.create_task(self._drain(), name="inbox-writer")
            return
        path = sqlite_path(self._url)
        # One thread per connection: work on a connection (and its close) runs in order.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inbox-writer")
        self._side_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inbox-checkpoint")
        loop = asyncio.get_running_loop()

        def connect() -> sqlite3.Connection:
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            apply_sqlite_pragmas(conn)
            return conn

        self._conn = await loop.run_in_executor(self._executor, connect)
        await loop.run_in_executor(self._executor, lambda: _own_checkpoints(self._conn))  # type: ignore[arg-type]
        self._checkpoint_conn = await loop.run_in_executor(self._side_executor, connect)
        self._task = asyncio.create_task(self._drain(), name="inbox-writer")
        self._checkpoint_task = asyncio.create_task(self._checkpoints(), name="inbox-checkpoint")

    async def close(self) -> None:
        """Stop taking jobs and close the connections; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        for task in (self._task, self._checkpoint_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        while not self._queue.empty():
            pending = self._queue.get_nowait()
            if not pending.future.done():
                pending.future.set_exception(StorageUnavailableError("the relay is shutting down"))
        if self._executor is not None and self._side_executor is not None:
            loop = asyncio.get_running_loop()
            # queued behind any group still running on the writer thread
            for executor, conn in ((self._executor, self._conn), (self._side_executor, self._checkpoint_conn)):
                if conn is not None:
                    await loop.run_in_executor(executor, conn.close)
                executor.shutdown(wait=True)

    async def run(self, job: Job[T]) -> T:
        """Queue a job and wait until it is committed; its exception is re-raised here."""
        result: T = await self._submit(_Pending(job, asyncio.get_running_loop().create_future()))
        return result

    async def run_batched(self, handler: BatchHandler, item: Any) -> Any:
        """Queue an item for `handler`, which takes every item of its kind in a group at once.

        The hot path (intake) pays its per-group work (cache checks, look-ups) once per
        group and writes rows with `executemany`. On PostgreSQL a batch holds one item.
        """
        return await self._submit(
            _Pending(_alone(handler, item), asyncio.get_running_loop().create_future(), handler, item)
        )

    async def _submit(self, pending: _Pending) -> Any:
        if self._closed:
            raise StorageUnavailableError("the writer is closed")
        if self._task is None or self._task.done():
            raise StorageUnavailableError("the writer is not running")
        try:
            self._queue.put_nowait(pending)
        except asyncio.QueueFull:
            raise StorageUnavailableError("the write queue is full") from None
        return await pending.future

    # SQLite -------------------------------------------------------------------------

    async def _drain(self) -> None:
        while True:
            group = [await self._queue.get()]
            try:
                await self._turn.acquire()  # a checkpoint may be copying: what queues meanwhile joins the group
            except asyncio.CancelledError:
                self._settle(group, [(False, StorageUnavailableError("the relay is shutting down"))])
                raise
            try:
                while len(group) < MAX_GROUP and not self._queue.empty():
                    group.append(self._queue.get_nowait())
                outcomes = await self._outcomes(group, asyncio.ensure_future(self._run_group(group)))
            finally:
                self._turn.release()
            self._settle(group, outcomes)

    async def _outcomes(
        self, group: list[_Pending], running: asyncio.Future[list[tuple[bool, Any]]]
    ) -> list[tuple[bool, Any]]:
        """Each job's outcome once its group is committed (or has failed)."""
        try:
            outcomes = await asyncio.shield(running)
        except asyncio.CancelledError:
            # closing: the group finishes (on its thread, or its connection); callers still learn the outcome
            self._settle(group, await _outcomes_of(running, len(group)))
            raise
        except Exception as exc:  # the transaction itself failed: nobody was committed
            log.error("write group of %d failed: %s", len(group), type(exc).__name__)
            self._note_failure(exc)
            return [(False, StorageUnavailableError(str(exc)))] * len(group)
        self.groups_committed += 1
        self.jobs_committed += len(group)
        self._note(outcomes)
        return outcomes

    def _note(self, outcomes: list[tuple[bool, Any]]) -> None:
        """A job that failed on storage (a read-only or full database fails the statement, not
        the BEGIN) counts as the writer failing; otherwise storage took the group."""
        failed = next((value for ok, value in outcomes if not ok and isinstance(value, STORAGE_ERRORS)), None)
        if failed is not None:
            self._note_failure(failed)
        else:
            self.failing = None

    def _note_failure(self, exc: BaseException) -> None:
        if self.failing is None:
            self.failing = WriteFailure(since_ms=now_ms(), error=type(exc).__name__)

    async def _run_group(self, group: list[_Pending]) -> list[tuple[bool, Any]]:
        if self._conn is not None:  # SQLite: `start` opened the writer's own connection
            # Fast path on the event loop: no thread hop (measured 15 % more intake) and the
            # lock taken without waiting. Another process writing (the CLI) makes BEGIN fail
            # at once; the group then runs on the writer's thread, which may wait for it.
            try:
                return self._apply(SqliteSession(self._conn, wait=False, busy_timeout_ms=self._busy_timeout_ms), group)
            except LockBusyError:
                session = SqliteSession(self._conn, wait=True, busy_timeout_ms=self._busy_timeout_ms)
                return await asyncio.get_running_loop().run_in_executor(self._executor, self._apply, session, group)
        async with self._engine.connect() as conn:
            return await conn.run_sync(lambda sync_conn: self._apply(PgSession(sync_conn), group))

    @staticmethod
    def _settle(group: list[_Pending], outcomes: list[tuple[bool, Any]]) -> None:
        for pending, (ok, value) in zip(group, outcomes, strict=True):
            if pending.future.done():
                continue
            if ok:
                pending.future.set_result(value)
            else:
                pending.future.set_exception(value)

    def _apply(self, session: SqliteSession | PgSession, group: list[_Pending]) -> list[tuple[bool, Any]]:
        """Run a group in one transaction; if any job raises, redo each job on its own.

        The fast path has no per-job savepoint; a job that raises (a reused nonce, a
        conflicting id, another replica's insert winning a race) sends its group down the
        slow path, where every job commits or rolls back alone, so no job takes another
        with it.
        """
        self._groups += 1
        tx = session.tx(self._groups)
        results: dict[int, tuple[bool, Any]] = {}
        batches: dict[BatchHandler, list[int]] = {}
        session.begin()
        try:
            for index, pending in enumerate(group):
                if pending.handler is not None:
                    batches.setdefault(pending.handler, []).append(index)
                else:
                    results[index] = (True, pending.job(tx))
            for handler, indexes in batches.items():
                for index, value in zip(indexes, handler(tx, [group[i].item for i in indexes]), strict=True):
                    results[index] = (not isinstance(value, Exception), value)
            session.commit()
            return [results[i] for i in range(len(group))]
        except Exception:
            session.rollback()
        except BaseException:
            session.rollback()
            raise
        # the slow path may wait for the lock: part of it may already have committed
        session.wait_for_lock()
        return [self._apply_one(session, pending) for pending in group]

    def _apply_one(self, session: SqliteSession | PgSession, pending: _Pending) -> tuple[bool, Any]:
        """One job in its own transaction. On PostgreSQL a unique violation means another
        replica committed the row this job looked for and did not see yet (its look-up ran
        before that commit); the job runs again, and its look-up now finds the row."""
        for attempt in range(1, CONFLICT_RETRIES + 2):
            self._groups += 1
            session.begin()
            try:
                value = pending.job(session.tx(self._groups))
            except IntegrityError as exc:
                session.rollback()
                if isinstance(session, PgSession) and attempt <= CONFLICT_RETRIES:
                    continue
                return (False, exc)
            except Exception as exc:
                session.rollback()
                return (False, exc)
            except BaseException:
                session.rollback()
                raise
            session.commit()
            return (True, value)
        raise AssertionError("unreachable")

    async def _checkpoints(self) -> None:
        while True:
            await asyncio.sleep(CHECKPOINT_EVERY_SEC)
            try:
                await self.checkpoint()
            except Exception as exc:  # the next round tries again: the log must not be left to grow
                log.warning("wal checkpoint failed: %s", type(exc).__name__)

    async def checkpoint(self) -> tuple[int, int]:
        """Copy the write-ahead log into the database between two groups (SQLite; the writer does
        this every CHECKPOINT_EVERY_SEC): (frames in the log, frames copied). The write after
        it starts the log again, unless a reader still reads an older snapshot."""
        if self._side_executor is None or self._checkpoint_conn is None:
            return (0, 0)
        conn = self._checkpoint_conn
        async with self._turn:  # no group commits while the log is copied: it is copied whole
            started = time.perf_counter()
            _, frames, copied = await asyncio.get_running_loop().run_in_executor(
                self._side_executor, lambda: conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            )
            self.on_checkpoint(time.perf_counter() - started)
        return int(frames), int(copied)


def _own_checkpoints(conn: sqlite3.Connection) -> None:
    """The writer's connection leaves checkpoints to the writer's own turn (no automatic one
    inside a commit, on the event loop) and cuts the log back when it starts again."""
    conn.execute("PRAGMA wal_autocheckpoint=0")
    conn.execute(f"PRAGMA journal_size_limit={WAL_KEPT_BYTES}")


async def _outcomes_of(running: asyncio.Future[list[tuple[bool, Any]]], size: int) -> list[tuple[bool, Any]]:
    try:
        return await running
    except Exception as exc:
        return [(False, StorageUnavailableError(str(exc)))] * size
