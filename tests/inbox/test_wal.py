"""SQLite's write-ahead log under steady writes: each checkpoint copies all of it, and the log
starts again after it, so it holds what was written since the last checkpoint, not since start."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from inbox import open_inbox
from inbox.writer import Writer
from tests.inbox.test_writer import insert

ROUNDS = 6
COMMITS = 60


@pytest.fixture
async def writer(database_url: str) -> AsyncIterator[Writer]:
    storage = await open_inbox(database_url)
    yield storage.writer
    await storage.close()


async def test_the_log_starts_again_after_each_checkpoint_under_steady_writes(writer: Writer) -> None:
    """Commits one after another, with a checkpoint asked for while they go on: no commit lands
    while the log is copied, so every checkpoint copies the whole log, and the log never holds
    more than two rounds of commits (without its start again it would hold all of them)."""

    async def steady(start: int) -> None:
        for n in range(start, start + COMMITS):
            await writer.run(insert(n))  # one commit each

    logs = []
    for round_ in range(ROUNDS):
        _, (frames, copied) = await asyncio.gather(steady(round_ * COMMITS), writer.checkpoint())
        assert copied == frames  # nothing committed while it copied
        logs.append(frames)
    # each round's log holds that round's commits (about the same every round), not the sum of all
    # rounds so far (which grows by a round's worth every round)
    assert logs[-1] <= 1.5 * logs[1], logs
