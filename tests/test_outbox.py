"""The outbox and the loop's human half, through the console channel and a callback sink."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from inbox import outbox as outbox_rows
from receivers.aisha import signature as aisha_signature
from receivers.m3 import signature as m3_signature
from relay.answers import Ack, Done
from relay.app import create_app
from relay.outbox import backoff
from relay.state import ANSWERS, ENGINE, OUTBOX, WRITER
from tests.conftest import BOTH_DATABASES
from tests.fakes.sink import Sink
from tests.support import ADMIN_TOKEN, M3_SECRETS, fixture, fresh, make_settings, signed

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
TENANT = "a11dfb63-4b18-4eb8-872e-747af2e37c46"
AGENTS = [
    {"id": "ana", "display": "Ana", "groups": ["care-circle"], "channels": ["console"]},
    {"id": "bo", "display": "Bo", "groups": ["care-circle"], "channels": ["console"]},
    {"id": "cy", "display": "Cy", "groups": ["elsewhere"], "channels": ["console"]},
]


async def start(aiohttp_client: Any, database_url: str, **overrides: Any) -> TestClient:
    """The real app with the outbox driven by hand (`drain`), seeded with agents and grants."""
    settings = make_settings(database_url, dev=True, **overrides)
    client: TestClient = await aiohttp_client(create_app(settings, run_outbox=False))
    for agent in AGENTS:
        assert (await client.post("/admin/agents", json=agent, headers=ADMIN)).status == 201
    for subject, scope in (("actor:raz", ["panic.ui"]), (f"tenant:{TENANT}", ["care.escalation_detected"])):
        grant = {"subject": subject, "scope": scope, "groups": ["care-circle"], "by": "admin"}
        assert (await client.post("/admin/consents", json=grant, headers=ADMIN)).status == 201
    return client


async def emit(client: TestClient, source: str, name: str, **changes: Any) -> dict[str, Any]:
    payload = fresh(source, fixture(source, name), **changes)
    body, headers = signed(source, payload)
    response = await client.post(f"/hooks/{source}", data=body, headers=headers)
    assert response.status == 202, await response.text()
    return {"payload": payload, "body": body, **(await response.json())}


async def loop_of(client: TestClient, answer: dict[str, Any]) -> dict[str, Any]:
    return await (await client.get(answer["status_url"])).json()


async def signal_id(client: TestClient, event_id: str) -> int:
    from inbox import store

    (found,) = await store.find_signals(client.app[ENGINE], event_id)
    return found.id


async def outbox(client: TestClient) -> list[dict[str, Any]]:
    return await client.app[WRITER].run(outbox_rows.rows)


async def make_due(client: TestClient) -> None:
    """Skip the backoff wait: every pending row is due now (the wait itself is asserted elsewhere)."""
    await client.app[WRITER].run(
        lambda tx: tx.execute("UPDATE outbox SET next_attempt_at = 0 WHERE status = 'pending'")
    )


def test_backoff_doubles_to_a_minute_with_jitter() -> None:
    """Backoff is 1 s doubling to 60 s, within ±20 %."""
    assert [backoff(n, jitter=0) for n in (1, 2, 3, 6, 7, 12)] == [1, 2, 4, 32, 60, 60]
    assert 0.8 <= backoff(1) <= 1.2 and 48 <= backoff(20) <= 72


@BOTH_DATABASES
async def test_console_invitation_then_ack_and_done_reach_the_m3_sender(
    aiohttp_client: Any, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Invited → printed with code and link → ack and done → signed care.ack / care.done callbacks."""
    async with Sink() as sink:
        client = await start(aiohttp_client, database_url, m3_callback_url=f"{sink.url}/m3/callbacks")
        sent = await emit(client, "m3", "panic.ui__golden")
        assert sent["status"] == "invited"
        await client.app[OUTBOX].drain()
        printed = capsys.readouterr().out
        assert "Reply " in printed and " 1 for soft-checkin" in printed and "/a/" in printed
        loop = await loop_of(client, sent)
        assert sorted((i["agent"], i["status"]) for i in loop["invitations"]) == [("ana", "sent"), ("bo", "sent")]

        sid = await signal_id(client, sent["id"])
        answers = client.app[ANSWERS]
        assert (await answers.record(Ack(signal_id=sid, agent_id="ana", response="soft-checkin", via="slack"))).recorded
        assert (
            await answers.record(Done(signal_id=sid, agent_id="ana", outcome="held-space", note="calm", via="slack"))
        ).recorded
        await client.app[OUTBOX].drain()

        loop = await loop_of(client, sent)
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
            for (p,) in await client.app[WRITER].run(
                lambda tx: tx.execute("SELECT payload FROM outbox WHERE kind = 'callback' ORDER BY id").fetchall()
            )
        ]
        assert [b["type"] for b in queued] == ["care.ack", "care.done"]
        assert sorted(received, key=lambda b: b["id"]) == sorted(queued, key=lambda b: b["id"])
        updates = capsys.readouterr().out
        assert "Ana is here — soft-checkin" in updates and "Ana closed the loop — held-space" in updates


async def test_aisha_callbacks_are_signed_like_the_pr8_trigger(aiohttp_client: Any, database_url: str) -> None:
    """care.ack to AiSHA carries X-AISHA-SIGNATURE over the raw body and X-AISHA-EVENT-ID = its event_id."""
    async with Sink() as sink:
        client = await start(
            aiohttp_client, database_url, aisha_callback_url=sink.url, aisha_callback_secret="aisha-callback-key"
        )
        sent = await emit(client, "aisha", "care.escalation_detected__golden")
        await client.app[OUTBOX].drain()
        await client.app[ANSWERS].record(
            Ack(signal_id=await signal_id(client, sent["id"]), agent_id="bo", response="on-it", via="link")
        )
        await client.app[OUTBOX].drain()
        (got,) = sink.received
        body = json.loads(got.body)
        assert (
            aisha_signature.verify(
                got.headers, got.body, ["aisha-callback-key"], now=int(time.time()), max_window_sec=300
            )
            is None
        )
        aisha_signature.check(got.headers, body, header_ts=None, now=int(time.time()), max_window_sec=300)
        assert body["type"] == "care.ack" and body["for"] == sent["id"] and body["action"] == "on-it"


async def test_aisha_callback_retries_carry_a_fresh_ts_and_a_409_means_it_arrived(
    aiohttp_client: Any, database_url: str
) -> None:
    """The body's ts is the AiSHA signature's timestamp: every attempt is stamped anew, so a late retry still
    verifies; a 409 to a retry (same event_id, newer ts) means an earlier attempt had arrived."""
    async with Sink() as sink:
        client = await start(
            aiohttp_client, database_url, aisha_callback_url=sink.url, aisha_callback_secret="aisha-callback-key"
        )
        sent = await emit(client, "aisha", "care.escalation_detected__golden")
        await client.app[OUTBOX].drain()
        sink.answer(500)
        sink.answer(409)
        await client.app[ANSWERS].record(
            Ack(signal_id=await signal_id(client, sent["id"]), agent_id="bo", response="on-it", via="link")
        )

        def age_the_callback(tx: Any) -> None:  # as if the ack had waited a day for its first attempt
            (row_id, payload) = tx.execute("SELECT id, payload FROM outbox WHERE kind = 'callback'").fetchone()
            stored = json.loads(payload)
            stored["body"]["ts"] = "2026-01-01T00:00:00Z"
            tx.execute("UPDATE outbox SET payload = ? WHERE id = ?", (json.dumps(stored), row_id))

        await client.app[WRITER].run(age_the_callback)
        await client.app[OUTBOX].drain()
        await make_due(client)
        await client.app[OUTBOX].drain()
        assert len(sink.received) == 2
        for got in sink.received:
            body = json.loads(got.body)
            assert (
                aisha_signature.verify(
                    got.headers, got.body, ["aisha-callback-key"], now=int(time.time()), max_window_sec=300
                )
                is None
            )
            aisha_signature.check(got.headers, body, header_ts=None, now=int(time.time()), max_window_sec=300)
        first, second = (json.loads(got.body) for got in sink.received)
        assert first["event_id"] == second["event_id"] and first["action"] == second["action"] == "on-it"
        (callback,) = [r for r in await outbox(client) if r["kind"] == "callback"]
        assert (callback["status"], callback["attempts"]) == ("sent", 2)


async def test_only_invited_agents_answer_and_done_happens_once(aiohttp_client: Any, database_url: str) -> None:
    """A stranger is refused (audit only); two simultaneous dones close the loop once; acks by two agents are kept."""
    client = await start(aiohttp_client, database_url)
    sent = await emit(client, "m3", "panic.ui__golden")
    sid = await signal_id(client, sent["id"])
    answers = client.app[ANSWERS]
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
    loop = await loop_of(client, sent)
    assert loop["status"] == "done" and sorted(a["by"]["id"] for a in loop["acks"]) == ["ana", "bo"]
    audit = (await (await client.get("/admin/audit?limit=200", headers=ADMIN)).json())["items"]
    refusal = [a for a in audit if a["kind"] == "refusal"]
    assert len(refusal) == 1 and refusal[0]["agent"] == "cy" and refusal[0]["action_origin"] == "user_directed"
    assert all(a["action_origin"] == "user_directed" for a in audit if a["kind"] in ("ack", "done"))


async def test_done_without_ack_counts_as_the_agents_ack(aiohttp_client: Any, database_url: str) -> None:
    """Closing a loop one never acked records that agent's ack too."""
    client = await start(aiohttp_client, database_url)
    sent = await emit(client, "m3", "panic.ui__golden")
    result = await client.app[ANSWERS].record(
        Done(signal_id=await signal_id(client, sent["id"]), agent_id="bo", outcome="held-space", note="ok", via="link")
    )
    assert result.recorded
    loop = await loop_of(client, sent)
    assert [a["by"]["id"] for a in loop["acks"]] == ["bo"] and loop["done"]["by"]["id"] == "bo"


async def test_answers_are_never_blocked_by_autonomy_gates(aiohttp_client: Any, database_url: str) -> None:
    """With the kill switch off and shadow mode on, an agent's own answer is still recorded."""
    client = await start(aiohttp_client, database_url)
    sent = await emit(client, "m3", "panic.ui__golden")
    sid = await signal_id(client, sent["id"])
    await client.close()
    settings = make_settings(database_url, dev=True, relay_sending_enabled=False, relay_shadow_mode=True)
    paused: TestClient = await aiohttp_client(create_app(settings, run_outbox=False))
    assert (await emit(paused, "m3", "panic.ui__golden"))["status"] == "paused"
    assert (
        await paused.app[ANSWERS].record(Ack(signal_id=sid, agent_id="ana", response="soft-checkin", via="link"))
    ).recorded
    assert (await loop_of(paused, sent))["status"] == "acked"


async def test_callback_retries_honour_retry_after_then_fail_visibly(
    aiohttp_client: Any, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """429 with Retry-After waits that long; 500s back off; after the last attempt the row is failed."""
    async with Sink() as sink:
        client = await start(aiohttp_client, database_url, m3_callback_url=sink.url, relay_outbox_max_attempts=3)
        sent = await emit(client, "m3", "panic.ui__golden")
        await client.app[OUTBOX].drain()
        sink.answer(429, headers={"Retry-After": "7"})
        sink.answer(500, times=5)
        await client.app[ANSWERS].record(
            Ack(signal_id=await signal_id(client, sent["id"]), agent_id="ana", response="soft-checkin", via="link")
        )
        await client.app[OUTBOX].drain()
        (callback,) = [r for r in await outbox(client) if r["kind"] == "callback"]
        assert callback["status"] == "pending" and callback["attempts"] == 1 and callback["last_error"] == "HTTP 429"
        due, settled = await client.app[WRITER].run(
            lambda tx: tx.execute("SELECT next_attempt_at, updated_at FROM outbox WHERE kind = 'callback'").fetchone()
        )
        assert due - settled == 7_000  # Retry-After: 7, counted from when the 429 was settled
        for attempt in (2, 3):
            await make_due(client)
            await client.app[OUTBOX].drain()
        (callback,) = [r for r in await outbox(client) if r["kind"] == "callback"]
        assert callback["status"] == "failed" and callback["attempts"] == 3 and callback["last_error"] == "HTTP 500"
        assert len(sink.received) == 3
        # each attempt was signed afresh, and all carry the same callback id
        assert len({json.loads(r.body)["id"] for r in sink.received}) == 1
        assert '"kind":"delivery_failed"' in capsys.readouterr().out


async def test_permanent_callback_error_is_not_retried(aiohttp_client: Any, database_url: str) -> None:
    """A 4xx from the sender's endpoint fails the callback after one attempt."""
    async with Sink() as sink:
        client = await start(aiohttp_client, database_url, m3_callback_url=sink.url)
        sent = await emit(client, "m3", "panic.ui__golden")
        sink.answer(400)
        await client.app[ANSWERS].record(
            Ack(signal_id=await signal_id(client, sent["id"]), agent_id="ana", response="soft-checkin", via="link")
        )
        await client.app[OUTBOX].drain()
        (callback,) = [r for r in await outbox(client) if r["kind"] == "callback"]
        assert callback["status"] == "failed" and callback["attempts"] == 1


async def test_lapsed_lease_is_taken_back_and_sent_once(
    aiohttp_client: Any, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Rows a dead worker claimed come back when the lease lapses, and go out once."""
    client = await start(aiohttp_client, database_url)
    await emit(client, "m3", "panic.ui__golden")
    claimed = await client.app[WRITER].run(
        lambda tx: outbox_rows.claim(tx, now=int(time.time() * 1000), lease_ms=60_000, limit=10, kinds=("invite",))
    )
    assert len(claimed) == 2  # the "dead" worker never settles them
    await client.app[OUTBOX].drain()
    assert "invitation for" not in capsys.readouterr().out  # still leased: nobody else takes them
    await client.app[WRITER].run(lambda tx: tx.execute("UPDATE outbox SET lease_until = 0 WHERE status = 'sending'"))
    await client.app[OUTBOX].drain()
    printed = capsys.readouterr().out
    assert printed.count("── invitation for") == 2
    assert {r["status"] for r in await outbox(client)} == {"sent"}
    await client.app[OUTBOX].drain()
    assert "invitation for" not in capsys.readouterr().out


@BOTH_DATABASES
async def test_nul_characters_in_answers_are_dropped_not_a_500(aiohttp_client: Any, database_url: str) -> None:
    """PostgreSQL text cannot hold NUL: what a person typed is kept without it, on both databases alike."""
    client = await start(aiohttp_client, database_url)
    sent = await emit(client, "m3", "panic.ui__golden")
    sid = await signal_id(client, sent["id"])
    answers = client.app[ANSWERS]
    assert (await answers.record(Ack(signal_id=sid, agent_id="ana", response="soft\x00-checkin", via="link"))).recorded
    assert (
        await answers.record(Done(signal_id=sid, agent_id="ana", outcome="held\x00space", note="calm\x00", via="sms"))
    ).recorded
    loop = await loop_of(client, sent)
    assert loop["acks"][0]["action"] == "soft-checkin"
    assert (loop["done"]["outcome"], loop["done"]["note"]) == ("heldspace", "calm")
