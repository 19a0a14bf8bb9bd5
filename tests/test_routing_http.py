"""Routing through HTTP: every loop status a signal can get, and directory changes live."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.conftest import BOTH_DATABASES
from tests.support import ADMIN_TOKEN, fixture, fresh, make_settings, signed

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
TENANT = "a11dfb63-4b18-4eb8-872e-747af2e37c46"


async def post(client: TestClient, source: str, payload: dict[str, Any]) -> dict[str, Any]:
    body, headers = signed(source, payload)
    response = await client.post(f"/hooks/{source}", data=body, headers=headers)
    assert response.status == 202, await response.text()
    return await response.json()


async def admin_post(client: TestClient, path: str, data: dict[str, Any]) -> dict[str, Any]:
    response = await client.post(path, json=data, headers=ADMIN)
    assert response.status == 201, await response.text()
    return await response.json()


async def seed(
    client: TestClient, *, grant: dict[str, Any] | None = None, agents: list[dict[str, Any]] | None = None
) -> None:
    for agent in (
        agents
        if agents is not None
        else [{"id": "ana", "display": "Ana", "groups": ["care-circle"], "channels": ["console"]}]
    ):
        await admin_post(client, "/admin/agents", agent)
    default = {"subject": "actor:raz", "scope": ["panic.ui", "status.set"], "groups": ["care-circle"], "by": "admin"}
    await admin_post(client, "/admin/consents", grant or default)


def panic(**changes: Any) -> dict[str, Any]:
    return fresh("m3", fixture("m3", "panic.ui__golden"), **changes)


def escalation(**changes: Any) -> dict[str, Any]:
    return fresh("aisha", fixture("aisha", "care.escalation_detected__golden"), **changes)


async def loop_of(client: TestClient, answer: dict[str, Any]) -> dict[str, Any]:
    return await (await client.get(answer["status_url"])).json()


@pytest.fixture
def dev_settings(database_url: str) -> Any:
    return make_settings(database_url, dev=True)


@BOTH_DATABASES
async def test_invited_with_grant_and_agent(make_client: Any, dev_settings: Any) -> None:
    """An explicit grant and a reachable agent make the loop `invited`, one queued invitation."""
    # No outbox worker: a running one may send the invitation before the status is read.
    client = await make_client(dev_settings, run_outbox=False)
    await seed(client)
    answer = await post(client, "m3", panic())
    assert answer["status"] == "invited"
    loop = await loop_of(client, answer)
    assert loop["invitations"] == [{"agent": "ana", "channel": "console", "status": "queued"}]
    assert loop["decision"]["gates"] == [] and loop["decision"]["policy_gate_result"] == "allowed"


async def test_pending_consent_without_grant_and_after_revocation(make_client: Any, dev_settings: Any) -> None:
    """No grant: pending_consent; a revoked grant stops the very next signal."""
    client = await make_client(dev_settings)
    assert (await post(client, "m3", panic()))["status"] == "pending_consent"
    await seed(client)
    assert (await post(client, "m3", panic()))["status"] == "invited"
    grants = (await (await client.get("/admin/consents", headers=ADMIN)).json())["items"]
    response = await client.delete(f"/admin/consents/{grants[0]['id']}?by=lead", headers=ADMIN)
    assert response.status == 204
    assert (await post(client, "m3", panic()))["status"] == "pending_consent"
    revoked = (await (await client.get("/admin/consents", headers=ADMIN)).json())["items"][0]
    assert revoked["revoked_by"] == "lead" and revoked["revoked_at"]


async def test_payload_consent_must_be_explicit(make_client: Any, dev_settings: Any) -> None:
    """A stored grant is not enough: the payload's own consent must be explicit."""
    client = await make_client(dev_settings)
    await seed(client)
    payload = panic()
    payload["consent"]["mode"] = "implicit"
    assert (await post(client, "m3", payload))["status"] == "pending_consent"
    del payload["consent"]
    payload["id"] += "b"
    payload["security"]["nonce"] += "b"
    assert (await post(client, "m3", payload))["status"] == "pending_consent"


async def test_window_passed(make_client: Any, dev_settings: Any) -> None:
    """A signal older than its care window is recorded, nobody is invited."""
    client = await make_client(dev_settings)
    await seed(client)
    payload = panic(ts=(datetime.now(UTC) - timedelta(minutes=45)).isoformat())
    answer = await post(client, "m3", payload)
    assert answer["status"] == "window_passed"
    assert (await loop_of(client, answer))["invitations"] == []


@pytest.mark.parametrize(
    ("overrides", "status"), [({"relay_shadow_mode": True}, "shadowed"), ({"relay_sending_enabled": False}, "paused")]
)
async def test_shadow_and_kill_switch(
    make_client: Any, database_url: str, overrides: dict[str, Any], status: str
) -> None:
    """Shadow mode and the kill switch record the decision and send nothing."""
    client = await make_client(make_settings(database_url, dev=True, **overrides))
    await seed(client)
    answer = await post(client, "m3", panic())
    assert answer["status"] == status
    loop = await loop_of(client, answer)
    assert loop["invitations"] == [] and loop["decision"]["policy_gate_result"] == "blocked"


async def test_unroutable_when_nobody_reachable(make_client: Any, dev_settings: Any) -> None:
    """A grant whose groups hold no reachable agent: unroutable."""
    client = await make_client(dev_settings)
    await seed(client, agents=[{"id": "ana", "display": "Ana", "groups": ["care-circle"], "channels": ["slack"]}])
    assert (await post(client, "m3", panic()))["status"] == "unroutable"


async def test_aisha_blocked_inbox_only_and_invited(make_client: Any, dev_settings: Any) -> None:
    """AiSHA: upstream blocked is recorded; triggers are inbox_only; granted escalations invite."""
    client = await make_client(dev_settings)
    await seed(
        client,
        grant={
            "subject": f"tenant:{TENANT}",
            "scope": ["care.escalation_detected"],
            "groups": ["care-circle"],
            "by": "admin",
        },
    )
    assert (await post(client, "aisha", escalation(policy_gate_result="blocked")))["status"] == "blocked"
    trigger = fresh("aisha", fixture("aisha", "care.trigger_detected__golden"))
    assert (await post(client, "aisha", trigger))["status"] == "inbox_only"
    answer = await post(client, "aisha", escalation())
    assert answer["status"] == "invited"
    loop = await loop_of(client, answer)
    assert loop["decision"]["action_origin"] == "care_autonomous"


async def test_uncertain_origin_is_recorded(make_client: Any, dev_settings: Any) -> None:
    """A missing action_origin is treated as autonomous and the uncertainty is kept."""
    client = await make_client(dev_settings)
    payload = escalation()
    del payload["action_origin"]
    loop = await loop_of(client, await post(client, "aisha", payload))
    assert loop["decision"]["origin_uncertain"] is True and loop["decision"]["action_origin"] == "care_autonomous"


async def test_throttle_skips_busy_agent(make_client: Any, database_url: str) -> None:
    """Past RELAY_AGENT_MAX_INVITES_PER_HOUR an agent is skipped: the loop is unroutable."""
    client = await make_client(make_settings(database_url, dev=True, relay_agent_max_invites_per_hour=2))
    await seed(client)
    statuses = [(await post(client, "m3", panic()))["status"] for _ in range(3)]
    assert statuses == ["invited", "invited", "unroutable"]


async def test_every_decision_is_audited(
    make_client: Any, dev_settings: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each decision leaves an audit row and one [CARE_AUDIT] line without care data."""
    client = await make_client(dev_settings)
    await seed(client)
    payload = panic()
    await post(client, "m3", payload)
    audit = (await (await client.get("/admin/audit", headers=ADMIN)).json())["items"]
    decision = next(a for a in audit if a["kind"] == "decision")
    assert decision["event_id"] == payload["id"] and decision["action_origin"] == "care_autonomous"
    assert decision["policy_gate_result"] == "allowed" and decision["reason"]
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("[CARE_AUDIT] ")]
    record = json.loads([line for line in lines if '"decision"' in line][-1].removeprefix("[CARE_AUDIT] "))
    assert record["event_id"] == payload["id"] and record["status"] == "invited"
    text = "\n".join(lines)
    assert payload["intent"]["whisper"] not in text and "Raz" not in text and "Ana" not in text


async def test_skipped_agents_show_on_the_loop_and_cannot_answer(make_client: Any, database_url: str) -> None:
    """A throttled agent appears as `skipped` (no channel), is not counted again, and cannot ack."""
    from relay.answers import Ack
    from relay.state import ANSWERS, ENGINE

    client = await make_client(make_settings(database_url, dev=True, relay_agent_max_invites_per_hour=1))
    await seed(
        client,
        agents=[
            {"id": "ana", "display": "Ana", "groups": ["care-circle"], "channels": ["console"]},
            {"id": "bo", "display": "Bo", "groups": ["care-circle"], "channels": ["slack"]},
        ],
    )
    first = await post(client, "m3", panic())
    second = await post(client, "m3", panic())
    assert (first["status"], second["status"]) == ("invited", "unroutable")
    loop = await loop_of(client, second)
    assert sorted((i["agent"], i["channel"], i["status"]) for i in loop["invitations"]) == [
        ("ana", None, "skipped"),
        ("bo", None, "skipped"),
    ]
    from inbox import store

    (stored,) = await store.find_signals(client.app[ENGINE], second["id"])
    refused = await client.app[ANSWERS].record(
        Ack(signal_id=stored.id, agent_id="ana", response="soft-checkin", via="link")
    )
    assert refused.outcome == "not_invited"


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_two_replicas_on_one_postgres_keep_the_hourly_limit(make_client: Any, database_url: str) -> None:
    """Two relays on one PostgreSQL, one signal each at the same moment, a limit of one invitation an hour:
    exactly one of them invites Ana; the other finds her busy."""
    settings = make_settings(database_url, dev=True, relay_agent_max_invites_per_hour=1)
    first, second = await make_client(settings, run_outbox=False), await make_client(settings, run_outbox=False)
    agents = [
        {"id": f"agent{n}", "display": f"Agent {n}", "groups": [f"circle{n}"], "channels": ["console"]}
        for n in range(6)
    ]
    await seed(
        first,
        agents=agents,
        grant={"subject": "actor:raz", "scope": ["panic.ui"], "groups": ["circle0"], "by": "admin"},
    )
    for n in range(1, 6):  # a round per agent, each racing two fresh signals
        await admin_post(
            first,
            "/admin/consents",
            {"subject": f"actor:raz{n}", "scope": ["panic.ui"], "groups": [f"circle{n}"], "by": "admin"},
        )
    for n in range(6):
        actor = {"id": "raz" if n == 0 else f"raz{n}", "display": "Raz"}
        audience = {"groups": [f"circle{n}"], "targets": []}
        answers = await asyncio.gather(
            post(first, "m3", panic(actor=actor, audience=audience)),
            post(second, "m3", panic(actor=actor, audience=audience)),
        )
        assert sorted(a["status"] for a in answers) == ["invited", "unroutable"], (n, answers)
