"""The outbox and the loop's human half, through the console channel and a callback sink."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from inbox import outbox as outbox_rows
from receivers.aisha import signature as aisha_signature
from receivers.m3 import signature as m3_signature
from relay.answers import Ack, Done
from relay.keys import ANSWERS, WRITER
from relay.retries import backoff, scheduled
from tests.conftest import BOTH_DATABASES
from tests.driver import TEAM, TEAM_GRANTS, Relay, Start
from tests.fakes.sink import Received, Sink
from tests.support import M3_SECRETS


@pytest.fixture
async def relay(start: Start) -> Relay:
    """The relay (the outbox driven by hand) with Ana, Bo and Cy, and the grants for Raz and the tenant."""
    relay = await start()
    await relay.seed(*TEAM_GRANTS, agents=TEAM)
    return relay


def signed_like_the_pr8_trigger(got: Received) -> dict[str, Any]:
    """The callback's body, once its X-AISHA headers verify with the callback key (no timestamp header)."""
    body: dict[str, Any] = json.loads(got.body)
    now = int(time.time())
    assert aisha_signature.verify(got.headers, got.body, ["aisha-callback-key"], now=now, max_window_sec=300) is None
    aisha_signature.check(got.headers, body, header_ts=None, now=now, max_window_sec=300)
    return body


def test_backoff_doubles_to_a_minute_with_jitter() -> None:
    """Backoff is 1 s doubling to 60 s, within ±20 %."""
    assert [backoff(n, jitter=0) for n in (1, 2, 3, 6, 7, 12)] == [1, 2, 4, 32, 60, 60]
    assert 0.8 <= backoff(1) <= 1.2 and 48 <= backoff(20) <= 72


def test_callback_retries_wait_their_schedule_step_with_jitter() -> None:
    """The wait after attempt n is the schedule's n-th step, within ±20 %."""
    schedule = (5, 300, 1800)
    assert [scheduled(n, schedule, jitter=0) for n in (1, 2, 3)] == [5, 300, 1800]
    assert scheduled(2, schedule, jitter=0.2) == 360 and scheduled(2, schedule, jitter=-0.2) == 240
    assert all(240 <= scheduled(2, schedule) <= 360 for _ in range(50))


@BOTH_DATABASES
async def test_console_invitation_then_ack_and_done_reach_the_m3_sender(
    start: Start, capsys: pytest.CaptureFixture[str]
) -> None:
    """Invited → printed with code and link → ack and done → signed care.ack / care.done callbacks."""
    async with Sink() as sink:
        relay = await start(m3_callback_url=f"{sink.url}/m3/callbacks")
        await relay.seed(*TEAM_GRANTS, agents=TEAM)
        sent = await relay.emit("m3", "panic.ui__golden")
        assert sent["status"] == "invited"
        await relay.drain()
        printed = capsys.readouterr().out
        assert "Reply " in printed and " 1 for Check in gently" in printed and "/a/" in printed
        loop = await relay.loop(sent)
        assert sorted((i["agent"], i["status"]) for i in loop["invitations"]) == [("ana", "sent"), ("bo", "sent")]

        sid = await relay.signal_id(sent["id"])
        answers = relay.app[ANSWERS]
        assert (await answers.record(Ack(signal_id=sid, agent_id="ana", response="soft-checkin", via="slack"))).recorded
        assert (
            await answers.record(Done(signal_id=sid, agent_id="ana", outcome="held-space", note="calm", via="slack"))
        ).recorded
        await relay.drain()

        loop = await relay.loop(sent)
        assert loop["status"] == "done"
        assert loop["acks"][0]["by"] == {"id": "ana", "display": "Ana"} and loop["acks"][0]["action"] == "soft-checkin"
        assert loop["done"]["outcome"] == "held-space" and loop["done"]["note"] == "calm"
        received = []
        for got in sink.received:
            ts = m3_signature.verify(got.headers, got.body, M3_SECRETS, now=int(time.time()), max_window_sec=300)
            body = json.loads(got.body)
            m3_signature.check(got.headers, body, ts=ts, now=int(time.time()), max_window_sec=300)
            assert body["for"] == sent["id"] and body["by"] == {"id": "ana", "display": "Ana"} and body["id"]
            received.append(body)
        # Queued ack first, then done; one drain sends both at once, so they may reach the sink in either
        # order. Each queued callback arrived exactly once, as queued.
        queued = [
            json.loads(p)["body"]
            for (p,) in await relay.sql("SELECT payload FROM outbox WHERE kind = 'callback' ORDER BY id")
        ]
        assert [b["type"] for b in queued] == ["care.ack", "care.done"]
        assert sorted(received, key=lambda b: b["id"]) == sorted(queued, key=lambda b: b["id"])
        updates = capsys.readouterr().out
        assert "Ana is here — Check in gently" in updates and "Ana closed the loop — I held space" in updates


async def test_aisha_callbacks_are_signed_like_the_pr8_trigger(start: Start) -> None:
    """care.ack to AiSHA carries X-AISHA-SIGNATURE over the raw body and X-AISHA-EVENT-ID = its event_id."""
    async with Sink() as sink:
        relay = await start(aisha_callback_url=sink.url, aisha_callback_secret="aisha-callback-key")
        await relay.seed(*TEAM_GRANTS, agents=TEAM)
        sent = await relay.emit("aisha", "care.escalation_detected__golden")
        await relay.drain()
        await relay.app[ANSWERS].record(
            Ack(signal_id=await relay.signal_id(sent["id"]), agent_id="bo", response="on-it", via="link")
        )
        await relay.drain()
        (got,) = sink.received
        body = signed_like_the_pr8_trigger(got)
        assert body["type"] == "care.ack" and body["for"] == sent["id"] and body["action"] == "on-it"


async def test_aisha_callback_retries_carry_a_fresh_ts_and_a_409_means_it_arrived(start: Start) -> None:
    """The body's ts is the AiSHA signature's timestamp: every attempt is stamped anew, so a late retry still
    verifies; a 409 to a retry (same event_id, newer ts) means an earlier attempt had arrived."""
    async with Sink() as sink:
        relay = await start(aisha_callback_url=sink.url, aisha_callback_secret="aisha-callback-key")
        await relay.seed(*TEAM_GRANTS, agents=TEAM)
        sent = await relay.emit("aisha", "care.escalation_detected__golden")
        await relay.drain()
        sink.answer(500)
        sink.answer(409)
        await relay.app[ANSWERS].record(
            Ack(signal_id=await relay.signal_id(sent["id"]), agent_id="bo", response="on-it", via="link")
        )

        # as if the ack had waited a day for its first attempt
        ((row_id, payload),) = await relay.sql("SELECT id, payload FROM outbox WHERE kind = 'callback'")
        stored = json.loads(payload)
        stored["body"]["ts"] = "2026-01-01T00:00:00Z"
        await relay.sql("UPDATE outbox SET payload = ? WHERE id = ?", json.dumps(stored), row_id)
        await relay.drain()
        await relay.make_due()
        await relay.drain()
        assert len(sink.received) == 2
        for got in sink.received:
            signed_like_the_pr8_trigger(got)
        first, second = (json.loads(got.body) for got in sink.received)
        assert first["event_id"] == second["event_id"] and first["action"] == second["action"] == "on-it"
        (callback,) = [r for r in await relay.outbox() if r["kind"] == "callback"]
        assert (callback["status"], callback["attempts"]) == ("sent", 2)


async def test_only_invited_agents_answer_and_done_happens_once(relay: Relay) -> None:
    """A stranger is refused (audit only); two simultaneous dones close the loop once; acks by two agents are kept."""
    sent = await relay.emit("m3", "panic.ui__golden")
    sid = await relay.signal_id(sent["id"])
    answers = relay.app[ANSWERS]
    refused = await answers.record(Ack(signal_id=sid, agent_id="cy", response="soft-checkin", via="slack"))
    assert refused.outcome == "not_invited"
    both = await asyncio.gather(
        answers.record(Ack(signal_id=sid, agent_id="ana", response="soft-checkin", via="slack")),
        answers.record(Ack(signal_id=sid, agent_id="bo", response="hold-space", via="sms")),
    )
    assert [r.outcome for r in both] == ["recorded", "recorded"]
    again = await answers.record(Ack(signal_id=sid, agent_id="ana", response="soft-checkin", via="slack"))
    assert again.outcome == "already"
    closes = await asyncio.gather(
        answers.record(Done(signal_id=sid, agent_id="ana", outcome="held-space", note="", via="slack")),
        answers.record(Done(signal_id=sid, agent_id="bo", outcome="talked", note="", via="sms")),
    )
    assert sorted(r.outcome for r in closes) == ["already_done", "recorded"]
    loop = await relay.loop(sent)
    assert loop["status"] == "done" and sorted(a["by"]["id"] for a in loop["acks"]) == ["ana", "bo"]
    audit = await relay.audit()
    refusal = [a for a in audit if a["kind"] == "refusal"]
    assert len(refusal) == 1 and refusal[0]["agent"] == "cy" and refusal[0]["action_origin"] == "user_directed"
    assert all(a["action_origin"] == "user_directed" for a in audit if a["kind"] in ("ack", "done"))


async def test_done_without_ack_counts_as_the_agents_ack(relay: Relay) -> None:
    """Closing a loop one never acked records that agent's ack too."""
    sent = await relay.emit("m3", "panic.ui__golden")
    result = await relay.app[ANSWERS].record(
        Done(signal_id=await relay.signal_id(sent["id"]), agent_id="bo", outcome="held-space", note="ok", via="link")
    )
    assert result.recorded
    loop = await relay.loop(sent)
    assert [a["by"]["id"] for a in loop["acks"]] == ["bo"] and loop["done"]["by"]["id"] == "bo"


async def test_answers_are_never_blocked_by_autonomy_gates(relay: Relay, start: Start) -> None:
    """With the kill switch off and shadow mode on, an agent's own answer is still recorded."""
    sent = await relay.emit("m3", "panic.ui__golden")
    sid = await relay.signal_id(sent["id"])
    await relay.client.close()
    paused = await start(relay_sending_enabled=False, relay_shadow_mode=True)
    assert (await paused.emit("m3", "panic.ui__golden"))["status"] == "paused"
    assert (
        await paused.app[ANSWERS].record(Ack(signal_id=sid, agent_id="ana", response="soft-checkin", via="link"))
    ).recorded
    assert (await paused.loop(sent))["status"] == "acked"


async def test_callback_retries_honour_retry_after_then_fail_visibly(
    start: Start, capsys: pytest.CaptureFixture[str]
) -> None:
    """429 with Retry-After waits that long (longer than the schedule's step); 500s follow the schedule;
    after its last step the row is failed."""
    async with Sink() as sink:
        relay = await start(m3_callback_url=sink.url, relay_callback_schedule=(1, 1))
        await relay.seed(*TEAM_GRANTS, agents=TEAM)
        sent = await relay.emit("m3", "panic.ui__golden")
        await relay.drain()
        sink.answer(429, headers={"Retry-After": "7"})
        sink.answer(500, times=5)
        await relay.app[ANSWERS].record(
            Ack(signal_id=await relay.signal_id(sent["id"]), agent_id="ana", response="soft-checkin", via="link")
        )
        await relay.drain()
        (callback,) = [r for r in await relay.outbox() if r["kind"] == "callback"]
        assert callback["status"] == "pending" and callback["attempts"] == 1 and callback["last_error"] == "HTTP 429"
        ((due, settled),) = await relay.sql("SELECT next_attempt_at, updated_at FROM outbox WHERE kind = 'callback'")
        assert due - settled == 7_000  # Retry-After: 7, counted from when the 429 was settled
        for _attempt in (2, 3):
            await relay.make_due()
            await relay.drain()
        (callback,) = [r for r in await relay.outbox() if r["kind"] == "callback"]
        assert callback["status"] == "failed" and callback["attempts"] == 3 and callback["last_error"] == "HTTP 500"
        assert len(sink.received) == 3
        # each attempt was signed afresh, and all carry the same callback id
        assert len({json.loads(r.body)["id"] for r in sink.received}) == 1
        assert '"kind":"delivery_failed"' in capsys.readouterr().out


async def test_permanent_callback_error_is_not_retried(start: Start) -> None:
    """A 4xx from the sender's endpoint fails the callback after one attempt."""
    async with Sink() as sink:
        relay = await start(m3_callback_url=sink.url)
        await relay.seed(*TEAM_GRANTS, agents=TEAM)
        sent = await relay.emit("m3", "panic.ui__golden")
        sink.answer(400)
        await relay.app[ANSWERS].record(
            Ack(signal_id=await relay.signal_id(sent["id"]), agent_id="ana", response="soft-checkin", via="link")
        )
        await relay.drain()
        (callback,) = [r for r in await relay.outbox() if r["kind"] == "callback"]
        assert callback["status"] == "failed" and callback["attempts"] == 1


async def test_lapsed_lease_is_taken_back_and_sent_once(relay: Relay, capsys: pytest.CaptureFixture[str]) -> None:
    """Rows a dead worker claimed come back when the lease lapses, and go out once."""
    await relay.emit("m3", "panic.ui__golden")
    claimed = await relay.app[WRITER].run(
        lambda tx: outbox_rows.claim(tx, now=int(time.time() * 1000), lease_ms=60_000, limit=10, kinds=("invite",))
    )
    assert len(claimed) == 2  # the "dead" worker never settles them
    await relay.drain()
    assert "invitation for" not in capsys.readouterr().out  # still leased: nobody else takes them
    await relay.sql("UPDATE outbox SET lease_until = 0 WHERE status = 'sending'")
    await relay.drain()
    printed = capsys.readouterr().out
    assert printed.count("── invitation for") == 2
    assert {r["status"] for r in await relay.outbox()} == {"sent"}
    await relay.drain()
    assert "invitation for" not in capsys.readouterr().out


@BOTH_DATABASES
async def test_nul_characters_in_answers_are_dropped_not_a_500(relay: Relay) -> None:
    """PostgreSQL text cannot hold NUL: what a person typed is kept without it, on both databases alike."""
    sent = await relay.emit("m3", "panic.ui__golden")
    sid = await relay.signal_id(sent["id"])
    answers = relay.app[ANSWERS]
    assert (await answers.record(Ack(signal_id=sid, agent_id="ana", response="soft\x00-checkin", via="link"))).recorded
    assert (
        await answers.record(Done(signal_id=sid, agent_id="ana", outcome="held\x00space", note="calm\x00", via="sms"))
    ).recorded
    loop = await relay.loop(sent)
    assert loop["acks"][0]["action"] == "soft-checkin"
    assert (loop["done"]["outcome"], loop["done"]["note"]) == ("heldspace", "calm")
