"""PR8 forwarding of accepted escalations to a workflow engine, and the no-timers rule."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from receivers.aisha import signature as aisha_signature
from relay.answers import Ack
from relay.keys import ANSWERS, WRITER
from relay.outbox import ATTEMPT_TIMEOUT_SEC
from tests.conftest import Clock
from tests.driver import ANA, TEAM, TEAM_GRANTS, Relay, Start
from tests.fakes.sink import Sink

WORKFLOW_SECRET = "workflow-secret-for-tests"


def forwarding(sink: Sink, **more: Any) -> dict[str, Any]:
    return {
        "care_workflow_triggers_enabled": True,
        "care_workflow_escalation_webhook_url": f"{sink.url}/trigger",
        "care_workflow_webhook_secret": WORKFLOW_SECRET,
        **more,
    }


async def test_accepted_escalation_is_forwarded_byte_for_byte(start: Start) -> None:
    """An accepted escalation reaches the workflow engine with the sender's exact bytes, PR8-signed."""
    async with Sink() as sink:
        relay = await start(**forwarding(sink))
        await relay.seed(*TEAM_GRANTS, agents=TEAM)
        sent = await relay.emit("aisha", "care.escalation_detected__golden")
        trigger = await relay.emit("aisha", "care.trigger_detected__golden")
        assert trigger["status"] == "inbox_only"
        await relay.drain()
        (got,) = sink.received  # the trigger is not an escalation: not forwarded
        assert got.path == "/trigger" and got.body == sent["body"]
        assert got.headers["X-AISHA-EVENT-ID"] == sent["id"]
        aisha_signature.verify(got.headers, got.body, [WORKFLOW_SECRET], now=int(time.time()), max_window_sec=300)


@pytest.mark.parametrize(
    "settings",
    [
        {"care_workflow_triggers_enabled": False},
        {"relay_sending_enabled": False},
        {"relay_shadow_mode": True},
    ],
    ids=["disabled", "kill-switch", "shadow"],
)
async def test_no_outbound_call_when_disabled_or_stopped(start: Start, settings: dict[str, Any]) -> None:
    """Disabled (the default), the kill switch or shadow mode: the listening sink stays silent."""
    async with Sink() as sink:
        relay = await start(**forwarding(sink, **settings))
        await relay.seed(*TEAM_GRANTS, agents=TEAM)
        await relay.emit("aisha", "care.escalation_detected__golden")
        await relay.drain()
        await asyncio.sleep(0.2)
        assert sink.received == []
        assert [r for r in await relay.outbox() if r["kind"] == "forward"] == []


async def test_failing_workflow_engine_never_touches_ingestion(
    start: Start, capsys: pytest.CaptureFixture[str]
) -> None:
    """A down engine: intake still answers 202; the forward ends failed after 1 + retries, audited."""
    async with Sink() as sink:
        sink.answer(503, times=10)
        relay = await start(**forwarding(sink, care_workflow_webhook_max_retries=2))
        await relay.seed(*TEAM_GRANTS, agents=TEAM)
        sent = await relay.emit("aisha", "care.escalation_detected__golden")
        assert sent["status"] == "invited"
        for _ in range(3):
            await relay.drain()
            await relay.make_due()
        (forward,) = [r for r in await relay.outbox() if r["kind"] == "forward"]
        assert forward["status"] == "failed" and forward["attempts"] == 3
        assert len(sink.received) == 3
        assert '"kind":"action_skipped"' in capsys.readouterr().out
        assert (await relay.emit("aisha", "care.escalation_detected__golden"))["status"] == "invited"


async def test_forward_attempt_timeout_is_bounded(start: Start) -> None:
    """Each forward attempt stops at CARE_WORKFLOW_WEBHOOK_TIMEOUT_MS and is retried later."""
    async with Sink() as sink:
        # the engine's 200 comes 2 s after the request: long after the 200 ms set here, before the
        # 3 s default and the worker's own cutoff; the relay and the sink share one event loop, so
        # the earlier deadline fires first however slow the machine is
        sink.answer(200, delay=2.0)
        relay = await start(**forwarding(sink, care_workflow_webhook_timeout_ms=200))
        await relay.seed(*TEAM_GRANTS, agents=TEAM)
        await relay.emit("aisha", "care.escalation_detected__golden")
        await relay.drain()
        (forward,) = [r for r in await relay.outbox() if r["kind"] == "forward"]
        assert forward["status"] == "pending" and forward["last_error"] == "timed out"
        # an engine that never answers: the retry ends too, and the drain with it, well before the
        # worker's own cutoff for an attempt (a drain that waited for the engine would take that long)
        sink.hang()
        await relay.make_due()
        async with asyncio.timeout(ATTEMPT_TIMEOUT_SEC / 2):
            await relay.drain()
        (forward,) = [r for r in await relay.outbox() if r["kind"] == "forward"]
        assert (forward["status"], forward["attempts"], forward["last_error"]) == ("pending", 2, "timed out")


async def claim_rounds(relay: Relay, rounds: int, within: float = 60.0) -> None:
    """Wait (generously: `within`) until the running outbox worker has claimed `rounds` more times.

    With nothing to send, its only writes are its claims, one per poll (POLL_SEC)."""
    writer = relay.app[WRITER]
    enough = writer.jobs_committed + rounds
    deadline = time.monotonic() + within
    while writer.jobs_committed < enough:
        assert time.monotonic() < deadline, f"the worker polled fewer than {rounds} times in {within} s"
        await asyncio.sleep(0.05)


async def test_open_loops_never_change_on_a_timer(start: Start, clock: Clock) -> None:
    """A running relay with open loops, its clock pushed a month ahead, changes none of them."""
    relay = await start(run_outbox=True)  # the outbox worker running
    await relay.seed(TEAM_GRANTS[0], agents=[ANA])
    invited = await relay.emit("m3", "panic.ui__golden")
    acked = await relay.emit("m3", "panic.ui__golden")
    await relay.app[ANSWERS].record(
        Ack(signal_id=await relay.signal_id(acked["id"]), agent_id="ana", response="soft-checkin", via="link")
    )
    await relay.settled()  # the worker delivered everything and has nothing left to do
    before = [await relay.loop(x) for x in (invited, acked)]
    audit_before = await relay.audit()
    clock.fixed = time.time() + 31 * 86400
    await claim_rounds(relay, 3)  # several poll rounds of the worker, at the pushed clock
    after = [await relay.loop(x) for x in (invited, acked)]
    assert [b["status"] for b in before] == ["invited", "acked"]
    assert after == before
    assert await relay.audit() == audit_before
    assert await relay.sql("SELECT COUNT(*) FROM outbox WHERE status = 'pending'") == [(0,)]
