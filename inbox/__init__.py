"""Storage: the relay's database, opened once by whoever runs the relay (server or CLI).

`open_inbox(url)` is the one way in: it builds the engine, applies pending migrations,
starts the single writer and the reader; `Inbox.close` undoes all of it.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from inbox import db
from inbox.reader import Reader
from inbox.writer import Writer


@dataclass(frozen=True)
class Inbox:
    """An open database: `reader` for reads, `writer` for every write, `engine` for migrations
    (and the connections both use on PostgreSQL)."""

    engine: AsyncEngine
    writer: Writer
    reader: Reader

    async def close(self) -> None:
        """Stop the writer and the reader, then release the engine's connections; safe to call twice."""
        await self.writer.close()
        await self.reader.close()
        await self.engine.dispose()


async def open_inbox(url: str, *, busy_timeout_ms: int = db.BUSY_TIMEOUT_MS) -> Inbox:
    """Open the database at `url`, migrated to this version's schema, with its writer running.

    Whatever opening raises (a bad URL, an unreachable server, an unknown schema) comes
    through unchanged, with nothing left open. `busy_timeout_ms`: how long a SQLite write
    waits for a lock another process holds.
    """
    engine = db.create_engine(url)
    writer = Writer(url, engine, busy_timeout_ms=busy_timeout_ms)
    reader = Reader(url, engine)
    try:
        await db.upgrade(engine)
        await writer.start()
    except BaseException:
        # the failure to open is the one to report, not a second one while tidying up
        with contextlib.suppress(Exception):
            await writer.close()
        await reader.close()
        await engine.dispose()
        raise
    return Inbox(engine, writer, reader)
