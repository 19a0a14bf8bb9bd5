"""Reply codes in use: one row per open loop's coded invitation, found by key, freed by a done."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import pytest
from sqlalchemy import text

from inbox import db, invitations, open_inbox, reply_codes
from inbox.tx import Tx
from inbox.writer import Writer
from relay.answers import Done
from relay.keys import ANSWERS
from tests.conftest import BOTH_DATABASES
from tests.driver import ANA, Relay, Start, panic
from tests.support import PlanRecorder, fresh_sqlite, model_differences

BOB = {"id": "bob", "display": "Bob", "groups": ["care-circle"], "channels": ["console"]}


def scripted(codes: Sequence[str]) -> Callable[[], str]:
    """`random_code` drawing these codes in turn, over and over."""
    draws = itertools.cycle(codes)
    return lambda: next(draws)


@pytest.fixture
async def writer(database_url: str) -> AsyncIterator[Writer]:
    storage = await open_inbox(database_url)
    yield storage.writer
    await storage.close()


def _open_loop(tx: Tx, event_id: str, status: str = "invited") -> int:
    tx.execute(
        "INSERT INTO signal (source, event_id, type, subject, status, body_sha256, reason, action_origin,"
        " origin_uncertain, policy_gate_result, gate_failures, received_at, updated_at)"
        " VALUES ('m3', ?, 'panic.ui', 'actor:raz', ?, '', 'r', 'care_autonomous', 0, 'allowed', '[]', 0, 0)",
        (event_id, status),
    )
    return int(tx.execute("SELECT id FROM signal WHERE event_id = ?", (event_id,)).fetchone()[0])


def _invite(tx: Tx, signal_id: int, agent_id: str, code: str | None, status: str = "sent") -> int:
    tx.execute(
        "INSERT INTO invitation (signal_id, agent_id, channel, code, status, created_at, updated_at)"
        " VALUES (?, ?, 'console', ?, ?, 0, 0)",
        (signal_id, agent_id, code, status),
    )
    return int(
        tx.execute("SELECT id FROM invitation WHERE signal_id = ? AND agent_id = ?", (signal_id, agent_id)).fetchone()[
            0
        ]
    )


@BOTH_DATABASES
async def test_picked_codes_skip_those_held_and_each_other(writer: Writer, monkeypatch: pytest.MonkeyPatch) -> None:
    """Candidates an open loop of the same agent holds, or one already picked in the group, are drawn again."""

    def job(tx: Tx) -> list[str]:
        signal_id = _open_loop(tx, "e1")
        invitation_id = _invite(tx, signal_id, "ana", "AAAA")
        reply_codes.insert_reply_codes(tx, [reply_codes.ReplyCodeValues("ana", "AAAA", signal_id, invitation_id)])
        return reply_codes.pick_codes(tx, ["ana", "ana", "bo"])

    # ana's first draw is held (drawn again: CCCC); her second repeats the group's first (drawn
    # again: BBBB); bo may take the code ana holds
    monkeypatch.setattr(reply_codes, "random_code", scripted(["AAAA", "AAAA", "BBBB", "AAAA", "CCCC"]))
    assert await writer.run(job) == ["CCCC", "BBBB", "AAAA"]


async def test_an_agent_without_a_free_code_is_refused_not_looped_forever(
    writer: Writer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When every fresh draw is a code Ana holds, picking gives up after MAX_CODE_DRAWS with NoFreeCodeError."""
    held = [f"H{n:03d}" for n in range(reply_codes.MAX_CODE_DRAWS)]

    def job(tx: Tx) -> list[str]:
        for n, code in enumerate(held):
            signal_id = _open_loop(tx, f"e{n}")
            invitation_id = _invite(tx, signal_id, "ana", code)
            reply_codes.insert_reply_codes(tx, [reply_codes.ReplyCodeValues("ana", code, signal_id, invitation_id)])
        return reply_codes.pick_codes(tx, ["ana"])

    monkeypatch.setattr(reply_codes, "random_code", scripted(held))
    with pytest.raises(reply_codes.NoFreeCodeError):
        await writer.run(job)


async def _codes(relay: Relay) -> list[tuple[str, str, int, int]]:
    rows = await relay.sql("SELECT agent_id, code, signal_id, invitation_id FROM reply_code ORDER BY invitation_id")
    return [(str(a), str(c), int(s), int(i)) for a, c, s, i in rows]


async def _held(relay: Relay) -> list[tuple[str, str, int, int]]:
    """What the old history scan found: coded invitations of open loops, as reply_code rows."""
    rows = await relay.sql(
        "SELECT i.agent_id, i.code, i.signal_id, i.id FROM invitation i JOIN signal s ON s.id = i.signal_id"
        " WHERE i.code IS NOT NULL AND s.status IN ('invited', 'acked') ORDER BY i.id"
    )
    return [(str(a), str(c), int(s), int(i)) for a, c, s, i in rows]


@BOTH_DATABASES
async def test_a_done_frees_its_codes_for_the_next_loop(start: Start, monkeypatch: pytest.MonkeyPatch) -> None:
    """While a loop is open its code is Ana's alone; once a person closes it, a new loop may take it again."""
    relay = await start(relay_agent_max_invites_per_hour=100)
    await relay.seed()
    monkeypatch.setattr(reply_codes, "random_code", scripted(["K7QX", "K7QX", "M4RT", "K7QX"]))
    first = await relay.send("m3", panic())
    second = await relay.send("m3", panic())
    codes = await _codes(relay)
    assert [c[1] for c in codes] == ["K7QX", "M4RT"] and codes == await _held(relay)

    signal_id = await relay.signal_id(first["id"])
    stored = await relay.app[ANSWERS].record(
        Done(signal_id=signal_id, agent_id="ana", outcome="held-space", note="", via="link")
    )
    assert stored.outcome == "recorded"
    assert [c[1] for c in await _codes(relay)] == ["M4RT"]

    third = await relay.send("m3", panic())
    assert [c[1] for c in await _codes(relay)] == ["M4RT", "K7QX"] and await _codes(relay) == await _held(relay)
    assert {first["status"], second["status"], third["status"]} == {"invited"}


@BOTH_DATABASES
async def test_codes_stay_unique_among_open_loops_under_forced_collisions(
    start: Start, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Forty concurrent signals for Ana and Bob, drawing from twelve codes only: no agent holds one code twice."""
    relay = await start(relay_agent_max_invites_per_hour=1000)
    await relay.seed(agents=[ANA, BOB])
    pool = [f"Q{n:03d}"[:4] for n in range(12)] * 200
    monkeypatch.setattr(reply_codes, "random_code", scripted(pool))
    await asyncio.gather(*(relay.send("m3", panic()) for _ in range(5)))
    codes = await _codes(relay)
    assert len(codes) == 10 and codes == await _held(relay)
    assert len({(agent, code) for agent, code, _, _ in codes}) == 10


@BOTH_DATABASES
async def test_a_code_taken_after_the_look_up_sends_the_group_down_the_slow_path(
    start: Start, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The key is the last word: a look-up that misses a held code fails the insert; redone alone, the item
    draws a free code and every signal of the group is still stored once."""
    relay = await start(relay_agent_max_invites_per_hour=100)
    await relay.seed()
    monkeypatch.setattr(reply_codes, "random_code", scripted(["AAAA", "AAAA", "BBBB", "CCCC", "DDDD"]))
    real = reply_codes.codes_in_use
    blind = [True]

    def once_blind(tx: Tx, pairs: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
        if blind[0] and len(pairs) > 0 and pairs[0][1] == "AAAA" and len(pairs) == 1:
            held = real(tx, pairs)
            if held:  # pretend another writer took it after we looked
                blind[0] = False
                return set()
        return real(tx, pairs)

    monkeypatch.setattr(reply_codes, "codes_in_use", once_blind)
    first = await relay.send("m3", panic())
    second = await relay.send("m3", panic())
    assert (first["status"], second["status"]) == ("invited", "invited") and not blind[0]
    codes = await _codes(relay)
    assert [c[1] for c in codes] == ["AAAA", "BBBB"] and codes == await _held(relay)
    assert (await relay.counts("signal", "invitation", "outbox")) == {"signal": 2, "invitation": 2, "outbox": 2}


# The migration ------------------------------------------------------------------------


def _old_inbox(conn: Any) -> None:
    """Rows as 0003 kept them: open, acked and closed loops, a skipped agent, a code two open loops share."""
    for n, status in ((1, "invited"), (2, "acked"), (3, "done"), (4, "invited"), (5, "unroutable")):
        conn.execute(
            text(
                "INSERT INTO signal (id, source, event_id, type, subject, status, body_sha256, reason, action_origin,"
                " origin_uncertain, policy_gate_result, gate_failures, received_at, updated_at)"
                " VALUES (:n, 'm3', :e, 'panic.ui', 'actor:raz', :status, '', 'r', 'care_autonomous', 0,"
                " 'allowed', '[]', 0, 0)"
            ),
            {"n": n, "e": f"e{n}", "status": status},
        )
    for i, s, agent, code, status in (
        (1, 1, "ana", "K7QX", "sent"),
        (2, 1, "bo", "K7QX", "sent"),
        (3, 2, "ana", "M4RT", "sent"),
        (4, 3, "ana", "P2ZZ", "sent"),
        (5, 4, "ana", "K7QX", "sent"),  # shares ana's open K7QX: the older invitation keeps it
        (6, 4, "cy", None, "skipped"),
        (7, 5, "cy", None, "skipped"),
    ):
        conn.execute(
            text(
                "INSERT INTO invitation (id, signal_id, agent_id, channel, code, status, created_at, updated_at)"
                " VALUES (:i, :s, :agent, 'console', :code, :status, 0, 0)"
            ),
            {"i": i, "s": s, "agent": agent, "code": code, "status": status},
        )


@BOTH_DATABASES
async def test_the_upgrade_fills_reply_codes_from_the_open_loops(database_url: str) -> None:
    """0003 → 0004: open and acked loops' codes go in, the oldest keeps a shared one, closed loops' stay out;
    the downgrade and a second upgrade give the same table."""
    from alembic import command

    engine = db.create_engine(database_url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(lambda c: command.upgrade(db._alembic_config(c), "0003"))
            await conn.run_sync(_old_inbox)
        expected = [("ana", "K7QX", 1, 1), ("ana", "M4RT", 2, 3), ("bo", "K7QX", 1, 2)]
        for _ in range(2):
            await db.upgrade(engine)
            async with engine.connect() as conn:
                rows = (
                    await conn.execute(
                        text("SELECT agent_id, code, signal_id, invitation_id FROM reply_code ORDER BY agent_id, code")
                    )
                ).all()
            assert [tuple(r) for r in rows] == expected
            async with engine.begin() as conn:
                await conn.run_sync(lambda c: command.downgrade(db._alembic_config(c), "0003"))
    finally:
        await engine.dispose()


@BOTH_DATABASES
async def test_reply_code_and_invitation_tables_match_the_models(database_url: str) -> None:
    """Migration 0004 creates exactly what inbox/models.py declares for reply_code and invitation's indexes."""
    engine = db.create_engine(database_url)
    try:
        await db.upgrade(engine)
        async with engine.connect() as conn:
            diff = await model_differences(conn, "reply_code", "invitation")
            indexes = await conn.run_sync(
                lambda c: {i["name"] for i in __import__("sqlalchemy").inspect(c).get_indexes("invitation")}
            )
    finally:
        await engine.dispose()
    assert "ix_invitation_agent_invited" in indexes
    assert diff == []


# Plans: the look-ups read an index, never the history ---------------------------------


async def test_code_look_ups_and_the_throttle_count_use_their_indexes(tmp_path: Any) -> None:
    """SQLite plans: reply codes by primary key, the throttle count on the not-skipped index, no table scan."""
    async with fresh_sqlite(tmp_path) as conn:
        tx = PlanRecorder(conn)
        reply_codes.pick_codes(tx, ["ana", "bo", "ana"])
        invitations.recent_invites(tx, ["ana", "bo"], 0, 6)
        reply_codes.release_codes(tx, 1)
        plans = tx.plans()
    assert len(plans) == 3
    assert "SEARCH reply_code USING COVERING INDEX sqlite_autoindex_reply_code_1 (agent_id=? AND code=?)" in plans[0]
    assert plans[1].count("ix_invitation_agent_invited (agent_id=? AND created_at>?)") == 2
    assert "ix_reply_code_signal_id" in plans[2]
    assert not any("SCAN reply_code" in p or "SCAN invitation" in p for p in plans)
