"""Answers that carry care data or a token are never kept by a cache: `Cache-Control: no-store`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient

from tests.support import ADMIN_TOKEN, fixture, fresh, make_settings, signed
from tests.test_links import invited, link

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def assert_no_store(response: ClientResponse) -> None:
    assert response.headers.get("Cache-Control") == "no-store", (response.method, response.url.path, response.status)


@pytest.fixture
async def client(make_client: Callable[..., Any], database_url: str) -> TestClient:
    """The real app in dev mode (the console channel), so that an invitation carries an action link."""
    started: TestClient = await make_client(make_settings(database_url, dev=True), run_outbox=False)
    return started


@pytest.mark.parametrize("source", ["m3", "aisha"])
async def test_intake_answers_carry_no_store(client: TestClient, source: str) -> None:
    """The 202, the duplicate's 200 (both carry a status token) and a refusal of a sender hook are no-store."""
    payload = fresh(
        source, fixture(source, "panic.ui__golden" if source == "m3" else "care.escalation_detected__golden")
    )
    body, headers = signed(source, payload)
    for expected in (202, 200):
        response = await client.post(f"/hooks/{source}", data=body, headers=headers)
        assert response.status == expected, await response.text()
        assert_no_store(response)
    refused = await client.post(f"/hooks/{source}", data=body, headers={"Content-Type": "application/json"})
    assert refused.status == 401
    assert_no_store(refused)


async def test_status_document_carries_no_store(client: TestClient) -> None:
    """`GET /v1/events/{id}`, opened by its status token or an admin bearer, or refused, is no-store."""
    body, headers = signed("m3", fresh("m3", fixture("m3", "panic.ui__golden")))
    accepted = await (await client.post("/hooks/m3", data=body, headers=headers)).json()
    by_token = await client.get(accepted["status_url"])
    by_admin = await client.get(f"/v1/events/{accepted['id']}", headers=ADMIN)
    refused = await client.get(f"/v1/events/{accepted['id']}?token=not-a-token")
    assert (by_token.status, by_admin.status, refused.status) == (200, 200, 403)
    for response in (by_token, by_admin, refused):
        assert_no_store(response)


async def test_admin_answers_carry_no_store(client: TestClient) -> None:
    """Every /admin/* answer is no-store: lists, creations, and refusals."""
    agent = {"id": "ana", "display": "Ana", "groups": ["care-circle"], "channels": ["console"]}
    responses = [
        await client.post("/admin/agents", json=agent, headers=ADMIN),
        await client.get("/admin/agents", headers=ADMIN),
        await client.get("/admin/agents/ana", headers=ADMIN),
        await client.get("/admin/inbox", headers=ADMIN),
        await client.get("/admin/audit", headers=ADMIN),
        await client.get("/admin/consents", headers=ADMIN),
        await client.get("/admin/agents"),
    ]
    assert [r.status for r in responses] == [201, 200, 200, 200, 200, 200, 401]
    for response in responses:
        assert_no_store(response)


async def test_action_link_pages_carry_no_store(client: TestClient) -> None:
    """The action-link page, the page after an answer, and a refused link are no-store."""
    _, invitation = await invited(client)
    page = await client.get(link(client, invitation))
    answered = await client.post(link(client, invitation), data={"action": "ack", "response": "soft-checkin"})
    refused = await client.get("/a/not-a-link")
    assert (page.status, answered.status, refused.status) == (200, 200, 403)
    for response in (page, answered, refused):
        assert_no_store(response)
