"""Intake writes a group of signals with one statement per table: distinct ids, rows that point at the
right rows, the hourly throttle as before, and the read side told of each new loop after commit."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from inbox import invitations
from inbox.tx import Tx, reserve_ids
from receivers import SENDERS
from relay.intake import Intake, IntakeResult
from relay.keys import INTAKE, WRITER
from relay.model import RoutingSettings, Signal
from tests.conftest import BOTH_DATABASES
from tests.driver import ANA, Relay, Start, panic
from tests.support import body_of

BOB = {"id": "bob", "display": "Bob", "groups": ["care-circle"], "channels": ["console"]}


def _parsed(payload: dict[str, Any]) -> tuple[Signal, bytes]:
    return SENDERS["m3"].parse(payload), body_of(payload)


async def _receive_together(intake: Intake, items: list[tuple[Signal, bytes]]) -> list[IntakeResult]:
    """Hand every item to the writer before it runs: they share commit groups."""
    return list(await asyncio.gather(*(intake.receive(signal, body) for signal, body in items)))


@BOTH_DATABASES
async def test_a_group_of_invited_signals_gets_distinct_ids_and_rows_that_point_at_them(start: Start) -> None:
    """Forty invited signals (two agents each) mixed with plain ones and a replay, in shared groups: each signal,
    invitation, reply code and outbox row is stored once and names the right row."""
    relay = await start(relay_agent_max_invites_per_hour=1000)
    await relay.seed(agents=[ANA, BOB])
    writer = relay.app[WRITER]
    invited = [_parsed(panic()) for _ in range(40)]
    plain = [_parsed(panic(actor={"id": "stranger", "display": "S"})) for _ in range(10)]
    mixed = [x for pair in zip(invited[:10], plain, strict=True) for x in pair] + invited[10:] + [invited[0]]
    groups_before = writer.groups_committed
    results = await _receive_together(relay.app[INTAKE], mixed)
    assert writer.groups_committed - groups_before < len(mixed)  # they did share groups

    by_event = {r.event_id: r for r in results[:-1]}
    assert results[-1].duplicate and results[-1].signal_id is None
    assert {by_event[s.event_id].status for s, _ in invited} == {"invited"}
    assert {by_event[s.event_id].status for s, _ in plain} == {"pending_consent"}
    assert all(by_event[s.event_id].signal_id is None for s, _ in plain)

    stored = {str(e): int(i) for i, e in await relay.sql("SELECT id, event_id FROM signal")}
    assert len(stored) == 50
    assert {s.event_id: by_event[s.event_id].signal_id for s, _ in invited} == {
        s.event_id: stored[s.event_id] for s, _ in invited
    }
    rows = await relay.sql("SELECT id, signal_id, agent_id, code, status FROM invitation ORDER BY id")
    assert sorted((int(s), str(a)) for _, s, a, _, _ in rows) == sorted(
        (stored[s.event_id], agent) for s, _ in invited for agent in ("ana", "bob")
    )
    assert {str(status) for *_, status in rows} == {"queued"}
    codes = await relay.sql("SELECT agent_id, code, signal_id, invitation_id FROM reply_code")
    assert sorted((str(a), str(c), int(s), int(i)) for a, c, s, i in codes) == sorted(
        (str(a), str(c), int(s), int(i)) for i, s, a, c, _ in rows
    )
    assert len({(a, c) for a, c, _, _ in codes}) == 80
    work = await relay.sql("SELECT kind, ref_id, payload, status FROM outbox")
    assert sorted(int(ref) for _, ref, _, _ in work) == [int(r[0]) for r in rows]
    assert all(
        kind == "invite" and status == "pending" and json.loads(payload) == {"invitation_id": ref}
        for kind, ref, payload, status in work
    )
    # later single inserts (an answer's outbox row, a plain signal) take ids after the reserved ones
    await relay.send("m3", panic(actor={"id": "stranger", "display": "S"}))
    assert len({int(i) for (i,) in await relay.sql("SELECT id FROM signal")}) == 51


@BOTH_DATABASES
async def test_the_throttle_still_refuses_at_the_limit_within_a_group_and_across_the_hour(start: Start) -> None:
    """A limit of three: two sent, then five together: one more is invited and four are throttled; the
    skipped rows they leave are not counted, and once those invitations are an hour old Ana is invited again."""
    relay = await start(relay_agent_max_invites_per_hour=3)
    await relay.seed()
    assert [(await relay.send("m3", panic()))["status"] for _ in range(2)] == ["invited", "invited"]
    together = await _receive_together(relay.app[INTAKE], [_parsed(panic()) for _ in range(5)])
    assert sorted(r.status for r in together) == ["invited", "unroutable", "unroutable", "unroutable", "unroutable"]
    assert (await relay.sql("SELECT COUNT(*) FROM invitation WHERE status = 'skipped'"))[0][0] == 4
    assert (await relay.send("m3", panic()))["status"] == "unroutable"
    await relay.sql("UPDATE invitation SET created_at = created_at - 3601000")
    assert (await relay.send("m3", panic()))["status"] == "invited"


@BOTH_DATABASES
async def test_the_throttle_count_stops_at_the_limit_and_skips_what_it_should(relay: Relay) -> None:
    """recent_invites: not-skipped invitations since the hour began, per agent, at most `limit` of them."""
    writer = relay.app[WRITER]

    def seed(tx: Tx) -> None:
        for n in range(12):
            tx.execute(
                "INSERT INTO signal (source, event_id, type, subject, status, body_sha256, reason, action_origin,"
                " origin_uncertain, policy_gate_result, gate_failures, received_at, updated_at) VALUES"
                " ('m3', ?, 'panic.ui', 'actor:raz', 'invited', '', 'r', 'care_autonomous', 0, 'allowed', '[]', 0, 0)",
                (f"e{n}",),
            )
        rows = [(n + 1, "ana", "skipped" if n % 3 == 0 else "queued", 1_000 + n) for n in range(12)]
        rows += [(1, "bob", "sent", 1_000), (2, "cy", "queued", 999)]
        tx.executemany(
            "INSERT INTO invitation (signal_id, agent_id, channel, code, status, created_at, updated_at)"
            " VALUES (?, ?, 'console', NULL, ?, ?, 0)",
            rows,
        )

    await writer.run(seed)
    agents = ["ana", "bob", "cy", "dee"]
    assert await writer.run(lambda tx: invitations.recent_invites(tx, agents, 1_000, 100)) == {"ana": 8, "bob": 1}
    assert await writer.run(lambda tx: invitations.recent_invites(tx, agents, 1_000, 5)) == {"ana": 5, "bob": 1}
    assert await writer.run(lambda tx: invitations.recent_invites(tx, agents, 1_000, 0)) == {}
    many = [f"agent{n}" for n in range(250)] + ["ana"]  # more agents than one statement counts
    assert await writer.run(lambda tx: invitations.recent_invites(tx, many, 1_000, 6)) == {"ana": 6}


@BOTH_DATABASES
async def test_reserved_ids_are_never_handed_out_twice(relay: Relay) -> None:
    """Ids reserved in one transaction, used, and the next reservation and a default id all differ."""

    def job(tx: Tx) -> tuple[list[int], list[int], int]:
        first = reserve_ids(tx, "outbox", 3)
        tx.executemany(
            "INSERT INTO outbox (id, kind, ref_id, payload, status, attempts, next_attempt_at, created_at, updated_at)"
            " VALUES (?, 'callback', NULL, '{}', 'sent', 1, 0, 0, 0)",
            [(i,) for i in first],
        )
        second = reserve_ids(tx, "outbox", 2)
        tx.executemany(
            "INSERT INTO outbox (id, kind, ref_id, payload, status, attempts, next_attempt_at, created_at, updated_at)"
            " VALUES (?, 'callback', NULL, '{}', 'sent', 1, 0, 0, 0)",
            [(i,) for i in second],
        )
        row = tx.execute(
            "INSERT INTO outbox (kind, ref_id, payload, status, attempts, next_attempt_at, created_at, updated_at)"
            " VALUES ('callback', NULL, '{}', 'sent', 1, 0, 0, 0) RETURNING id"
        ).fetchone()
        return first, second, int(row[0])

    first, second, plain = await relay.app[WRITER].run(job)
    assert len(set(first) | set(second) | {plain}) == 6 and max(first) < min(second)
    assert first == sorted(first)


@BOTH_DATABASES
async def test_on_invited_hears_each_new_loop_with_work_after_commit(relay: Relay) -> None:
    """The hook gets (signal id, parsed signal) for each new signal with work rows, once it is committed; never for
    plain signals or replays."""
    await relay.seed()
    heard: list[tuple[int, Signal, int]] = []
    writer = relay.app[WRITER]

    def hear(signal_id: int, signal: Signal) -> None:
        heard.append((signal_id, signal, writer.groups_committed))

    intake = Intake(
        writer,
        RoutingSettings(agent_max_invites_per_hour=100, configured_channels=frozenset({"console"})),
        on_invited=hear,
    )
    invited = [_parsed(panic()) for _ in range(3)]
    plain = _parsed(panic(actor={"id": "stranger", "display": "S"}))
    before = writer.groups_committed
    results = await _receive_together(intake, [*invited, plain, invited[0]])
    stored = {str(e): int(i) for i, e in await relay.sql("SELECT id, event_id FROM signal")}
    assert sorted((i, s.event_id) for i, s, _ in heard) == sorted((stored[s.event_id], s.event_id) for s, _ in invited)
    assert [s for _, s, _ in heard] == [s for s, _ in invited]
    assert all(group > before for _, _, group in heard)
    assert [r.duplicate for r in results] == [False, False, False, False, True]

    def broken(_signal_id: int, _signal: Signal) -> None:
        raise RuntimeError("cache full")

    fragile = Intake(
        writer,
        RoutingSettings(agent_max_invites_per_hour=100, configured_channels=frozenset({"console"})),
        on_invited=broken,
    )
    signal, body = _parsed(panic())
    assert (await fragile.receive(signal, body)).status == "invited"  # committed: the 202 stands
