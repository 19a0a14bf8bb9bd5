"""The database as a command uses it: opened (and migrated) first, with failures in one line."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

from inbox import Inbox, open_inbox
from relay import config
from relay.cli.problems import DATABASE_ERRORS, CliError, database_problem
from relay.settings import Settings

T = TypeVar("T")


async def _settle_sqlite_threads(deadline_sec: float = 2.0) -> None:
    """Let aiosqlite's worker threads end while the event loop still runs.

    After a failed connect, aiosqlite stops its thread and posts the answer to the loop from
    that thread; if `asyncio.run` has closed the loop by then, the thread prints a traceback
    ("Event loop is closed") after our one line.
    """
    deadline = time.monotonic() + deadline_sec
    for thread in threading.enumerate():
        if "_connection_worker_thread" in thread.name:
            # a thread has no awaitable end: poll until it is gone
            while thread.is_alive() and time.monotonic() < deadline:  # noqa: ASYNC110 (a thread has no awaitable end)
                await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def _opening(url: str) -> AsyncIterator[None]:
    """Turn a failure to open or migrate the database into a CliError that says what to check."""
    try:
        yield
    except DATABASE_ERRORS as exc:
        await _settle_sqlite_threads()
        raise CliError(database_problem(url, exc)) from None


@contextlib.asynccontextmanager
async def storage(settings: Settings) -> AsyncIterator[Inbox]:
    """The database at RELAY_DATABASE_URL, migrated, written through its writer; closed after."""
    url = settings.relay_database_url
    async with _opening(url):
        inbox = await open_inbox(url)
    try:
        yield inbox
    finally:
        await inbox.close()


def run(action: Callable[[Inbox], Awaitable[T]]) -> T:
    """Run one action against the database the environment names, and return its result."""
    settings = config.load(serving=False)

    async def go() -> T:
        async with storage(settings) as inbox:
            return await action(inbox)

    return asyncio.run(go())


async def upgrade(settings: Settings) -> None:
    """Apply pending migrations (opening the database does), failing in one line."""
    async with storage(settings):
        pass


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    settings = config.load(serving=False)
    asyncio.run(upgrade(settings))
    print("database is up to date")
    return 0
