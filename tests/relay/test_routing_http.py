"""Routing through HTTP: every loop status a signal can get, and directory changes live."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from relay.answers import Ack
from relay.keys import ANSWERS
from tests.conftest import BOTH_DATABASES
from tests.driver import ADMIN, AISHA_GRANT, Start, escalation, panic, signal


@BOTH_DATABASES
async def test_invited_with_grant_and_agent(start: Start) -> None:
    """An explicit grant and a reachable agent make the loop `invited`, one queued invitation."""
    # No outbox worker: a running one may send the invitation before the status is read.
    relay = await start()
    await relay.seed()
    answer = await relay.send("m3", panic())
    assert answer["status"] == "invited"
    loop = await relay.loop(answer)
    assert loop["invitations"] == [{"agent": "ana", "channel": "console", "status": "queued"}]
    assert loop["decision"]["gates"] == [] and loop["decision"]["policy_gate_result"] == "allowed"


async def test_pending_consent_without_grant_and_after_revocation(start: Start) -> None:
    """No grant: pending_consent; a revoked grant stops the very next signal."""
    relay = await start(run_outbox=True)
    assert (await relay.send("m3", panic()))["status"] == "pending_consent"
    await relay.seed()
    assert (await relay.send("m3", panic()))["status"] == "invited"
    _, grants = await relay.admin("GET", "/admin/consents")
    response = await relay.delete(f"/admin/consents/{grants['items'][0]['id']}?by=lead", headers=ADMIN)
    assert response.status == 204
    assert (await relay.send("m3", panic()))["status"] == "pending_consent"
    _, listed = await relay.admin("GET", "/admin/consents")
    revoked = listed["items"][0]
    assert revoked["revoked_by"] == "lead" and revoked["revoked_at"]


async def test_payload_consent_must_be_explicit(start: Start) -> None:
    """A stored grant is not enough: the payload's own consent must be explicit."""
    relay = await start(run_outbox=True)
    await relay.seed()
    payload = panic()
    payload["consent"]["mode"] = "implicit"
    assert (await relay.send("m3", payload))["status"] == "pending_consent"
    del payload["consent"]
    payload["id"] += "b"
    payload["security"]["nonce"] += "b"
    assert (await relay.send("m3", payload))["status"] == "pending_consent"


async def test_window_passed(start: Start) -> None:
    """A signal older than its care window is recorded, nobody is invited."""
    relay = await start(run_outbox=True)
    await relay.seed()
    payload = panic(ts=(datetime.now(UTC) - timedelta(minutes=45)).isoformat())
    answer = await relay.send("m3", payload)
    assert answer["status"] == "window_passed"
    assert (await relay.loop(answer))["invitations"] == []


@pytest.mark.parametrize(
    ("overrides", "status"), [({"relay_shadow_mode": True}, "shadowed"), ({"relay_sending_enabled": False}, "paused")]
)
async def test_shadow_and_kill_switch(start: Start, overrides: dict[str, Any], status: str) -> None:
    """Shadow mode and the kill switch record the decision and send nothing."""
    relay = await start(run_outbox=True, **overrides)
    await relay.seed()
    answer = await relay.send("m3", panic())
    assert answer["status"] == status
    loop = await relay.loop(answer)
    assert loop["invitations"] == [] and loop["decision"]["policy_gate_result"] == "blocked"


async def test_unroutable_when_nobody_reachable(start: Start) -> None:
    """A grant whose groups hold no reachable agent: unroutable."""
    relay = await start(run_outbox=True)
    await relay.seed(agents=[{"id": "ana", "display": "Ana", "groups": ["care-circle"], "channels": ["slack"]}])
    assert (await relay.send("m3", panic()))["status"] == "unroutable"


async def test_aisha_blocked_inbox_only_and_invited(start: Start) -> None:
    """AiSHA: upstream blocked is recorded; triggers are inbox_only; granted escalations invite."""
    relay = await start(run_outbox=True)
    await relay.seed(AISHA_GRANT)
    assert (await relay.send("aisha", escalation(policy_gate_result="blocked")))["status"] == "blocked"
    trigger = signal("aisha", "care.trigger_detected__golden")
    assert (await relay.send("aisha", trigger))["status"] == "inbox_only"
    answer = await relay.send("aisha", escalation())
    assert answer["status"] == "invited"
    loop = await relay.loop(answer)
    assert loop["decision"]["action_origin"] == "care_autonomous"


async def test_uncertain_origin_is_recorded(start: Start) -> None:
    """A missing action_origin is treated as autonomous and the uncertainty is kept."""
    relay = await start(run_outbox=True)
    payload = escalation()
    del payload["action_origin"]
    loop = await relay.loop(await relay.send("aisha", payload))
    assert loop["decision"]["origin_uncertain"] is True and loop["decision"]["action_origin"] == "care_autonomous"


async def test_throttle_skips_busy_agent(start: Start) -> None:
    """Past RELAY_AGENT_MAX_INVITES_PER_HOUR an agent is skipped: the loop is unroutable."""
    relay = await start(run_outbox=True, relay_agent_max_invites_per_hour=2)
    await relay.seed()
    statuses = [(await relay.send("m3", panic()))["status"] for _ in range(3)]
    assert statuses == ["invited", "invited", "unroutable"]


async def test_every_decision_is_audited(start: Start, capsys: pytest.CaptureFixture[str]) -> None:
    """Each decision leaves an audit row and one [CARE_AUDIT] line without care data."""
    relay = await start(run_outbox=True)
    await relay.seed()
    payload = panic()
    await relay.send("m3", payload)
    audit = await relay.audit()
    decision = next(a for a in audit if a["kind"] == "decision")
    assert decision["event_id"] == payload["id"] and decision["action_origin"] == "care_autonomous"
    assert decision["policy_gate_result"] == "allowed" and decision["reason"]
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("[CARE_AUDIT] ")]
    record = json.loads([line for line in lines if '"decision"' in line][-1].removeprefix("[CARE_AUDIT] "))
    assert record["event_id"] == payload["id"] and record["status"] == "invited"
    text = "\n".join(lines)
    assert payload["intent"]["whisper"] not in text and "Raz" not in text and "Ana" not in text


async def test_skipped_agents_show_on_the_loop_and_cannot_answer(start: Start) -> None:
    """A throttled agent appears as `skipped` (no channel), is not counted again, and cannot ack."""
    relay = await start(run_outbox=True, relay_agent_max_invites_per_hour=1)
    await relay.seed(
        agents=[
            {"id": "ana", "display": "Ana", "groups": ["care-circle"], "channels": ["console"]},
            {"id": "bo", "display": "Bo", "groups": ["care-circle"], "channels": ["slack"]},
        ],
    )
    first = await relay.send("m3", panic())
    second = await relay.send("m3", panic())
    assert (first["status"], second["status"]) == ("invited", "unroutable")
    loop = await relay.loop(second)
    assert sorted((i["agent"], i["channel"], i["status"]) for i in loop["invitations"]) == [
        ("ana", None, "skipped"),
        ("bo", None, "skipped"),
    ]
    stored = await relay.signal_id(second["id"])
    refused = await relay.app[ANSWERS].record(
        Ack(signal_id=stored, agent_id="ana", response="soft-checkin", via="link")
    )
    assert refused.outcome == "not_invited"


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_two_replicas_on_one_postgres_keep_the_hourly_limit(start: Start) -> None:
    """Two relays on one PostgreSQL, one signal each at the same moment, a limit of one invitation an hour:
    exactly one of them invites Ana; the other finds her busy."""
    first, second = await start(relay_agent_max_invites_per_hour=1), await start(relay_agent_max_invites_per_hour=1)
    agents = [
        {"id": f"agent{n}", "display": f"Agent {n}", "groups": [f"circle{n}"], "channels": ["console"]}
        for n in range(6)
    ]
    await first.seed(
        {"subject": "actor:raz", "scope": ["panic.ui"], "groups": ["circle0"], "by": "admin"}, agents=agents
    )
    for n in range(1, 6):  # a round per agent, each racing two fresh signals
        await first.create(
            "/admin/consents",
            {"subject": f"actor:raz{n}", "scope": ["panic.ui"], "groups": [f"circle{n}"], "by": "admin"},
        )
    for n in range(6):
        actor = {"id": "raz" if n == 0 else f"raz{n}", "display": "Raz"}
        audience = {"groups": [f"circle{n}"], "targets": []}
        answers = await asyncio.gather(
            first.send("m3", panic(actor=actor, audience=audience)),
            second.send("m3", panic(actor=actor, audience=audience)),
        )
        assert sorted(a["status"] for a in answers) == ["invited", "unroutable"], (n, answers)
