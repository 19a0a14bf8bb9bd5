"""PR8 forwarding of accepted escalations to a workflow engine, and the no-timers rule."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from receivers.aisha import signature as aisha_signature
from relay.answers import Ack
from relay.app import create_app
from relay.state import OUTBOX, WRITER
from tests.fakes.sink import Sink
from tests.test_outbox import ADMIN, emit, loop_of, make_due, outbox, signal_id, start

WORKFLOW_SECRET = "workflow-secret-for-tests"


def forwarding(sink: Sink, **more: Any) -> dict[str, Any]:
    return {
        "care_workflow_triggers_enabled": True,
        "care_workflow_escalation_webhook_url": f"{sink.url}/trigger",
        "care_workflow_webhook_secret": WORKFLOW_SECRET,
        **more,
    }


async def settled(client: TestClient, timeout: float = 30.0) -> None:
    """Wait (generously) until the running outbox worker has settled every row: none pending or sending."""
    deadline = time.monotonic() + timeout
    query = "SELECT COUNT(*) FROM outbox WHERE status IN ('pending', 'sending')"
    while (left := await client.app[WRITER].run(lambda tx: tx.execute(query).fetchone()[0])) > 0:
        assert time.monotonic() < deadline, f"{left} outbox row(s) still unsettled after {timeout} s"
        await asyncio.sleep(0.05)


async def test_accepted_escalation_is_forwarded_byte_for_byte(aiohttp_client: Any, database_url: str) -> None:
    """An accepted escalation reaches the workflow engine with the sender's exact bytes, PR8-signed."""
    async with Sink() as sink:
        client = await start(aiohttp_client, database_url, **forwarding(sink))
        sent = await emit(client, "aisha", "care.escalation_detected__golden")
        trigger = await emit(client, "aisha", "care.trigger_detected__golden")
        assert trigger["status"] == "inbox_only"
        await client.app[OUTBOX].drain()
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
async def test_no_outbound_call_when_disabled_or_stopped(
    aiohttp_client: Any, database_url: str, settings: dict[str, Any]
) -> None:
    """Disabled (the default), the kill switch or shadow mode: the listening sink stays silent."""
    async with Sink() as sink:
        client = await start(aiohttp_client, database_url, **forwarding(sink, **settings))
        await emit(client, "aisha", "care.escalation_detected__golden")
        await client.app[OUTBOX].drain()
        await asyncio.sleep(0.2)
        assert sink.received == []
        assert [r for r in await outbox(client) if r["kind"] == "forward"] == []


async def test_failing_workflow_engine_never_touches_ingestion(
    aiohttp_client: Any, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A down engine: intake still answers 202; the forward ends failed after 1 + retries, audited."""
    async with Sink() as sink:
        sink.answer(503, times=10)
        client = await start(aiohttp_client, database_url, **forwarding(sink, care_workflow_webhook_max_retries=2))
        sent = await emit(client, "aisha", "care.escalation_detected__golden")
        assert sent["status"] == "invited"
        for _ in range(3):
            await client.app[OUTBOX].drain()
            await make_due(client)
        (forward,) = [r for r in await outbox(client) if r["kind"] == "forward"]
        assert forward["status"] == "failed" and forward["attempts"] == 3
        assert len(sink.received) == 3
        assert '"kind":"action_skipped"' in capsys.readouterr().out
        assert (await emit(client, "aisha", "care.escalation_detected__golden"))["status"] == "invited"


async def test_forward_attempt_timeout_is_bounded(aiohttp_client: Any, database_url: str) -> None:
    """Each forward attempt stops at CARE_WORKFLOW_WEBHOOK_TIMEOUT_MS and is retried later."""
    async with Sink() as sink:
        sink.answer(200, delay=2.0)
        client = await start(aiohttp_client, database_url, **forwarding(sink, care_workflow_webhook_timeout_ms=200))
        await emit(client, "aisha", "care.escalation_detected__golden")
        started = time.perf_counter()
        await client.app[OUTBOX].drain()
        assert time.perf_counter() - started < 1.5
        (forward,) = [r for r in await outbox(client) if r["kind"] == "forward"]
        assert forward["status"] == "pending" and forward["last_error"] == "timed out"


async def test_open_loops_never_change_on_a_timer(aiohttp_client: Any, database_url: str, clock: Any) -> None:
    """A running relay with open loops, its clock pushed a month ahead, changes none of them."""
    from tests.support import make_settings

    settings = make_settings(database_url, dev=True)
    client: TestClient = await aiohttp_client(create_app(settings, clock=clock))  # outbox worker running
    for agent in ({"id": "ana", "display": "Ana", "groups": ["care-circle"], "channels": ["console"]},):
        assert (await client.post("/admin/agents", json=agent, headers=ADMIN)).status == 201
    grant = {"subject": "actor:raz", "scope": ["panic.ui"], "groups": ["care-circle"], "by": "admin"}
    assert (await client.post("/admin/consents", json=grant, headers=ADMIN)).status == 201
    invited = await emit(client, "m3", "panic.ui__golden")
    acked = await emit(client, "m3", "panic.ui__golden")
    from relay.state import ANSWERS

    await client.app[ANSWERS].record(
        Ack(signal_id=await signal_id(client, acked["id"]), agent_id="ana", response="soft-checkin", via="link")
    )
    await settled(client)  # the worker delivered everything and has nothing left to do
    before = [await loop_of(client, x) for x in (invited, acked)]
    audit_before = (await (await client.get("/admin/audit?limit=200", headers=ADMIN)).json())["items"]
    clock.fixed = time.time() + 31 * 86400
    await asyncio.sleep(3.5)  # several poll rounds of the worker
    after = [await loop_of(client, x) for x in (invited, acked)]
    assert [b["status"] for b in before] == ["invited", "acked"]
    assert after == before
    assert (await (await client.get("/admin/audit?limit=200", headers=ADMIN)).json())["items"] == audit_before
    rows = await client.app[WRITER].run(
        lambda tx: tx.execute("SELECT COUNT(*) FROM outbox WHERE status = 'pending'").fetchone()[0]
    )
    assert rows == 0
