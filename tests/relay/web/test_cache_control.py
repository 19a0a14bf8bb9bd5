"""Answers that carry care data or a token are never kept by a cache: `Cache-Control: no-store`."""

from __future__ import annotations

import pytest
from aiohttp import ClientResponse

from tests.driver import ADMIN, ANA, Relay, escalation, panic
from tests.support import signed


def assert_no_store(response: ClientResponse) -> None:
    assert response.headers.get("Cache-Control") == "no-store", (response.method, response.url.path, response.status)


@pytest.mark.parametrize("source", ["m3", "aisha"])
async def test_intake_answers_carry_no_store(relay: Relay, source: str) -> None:
    """The 202, the duplicate's 200 (both carry a status token) and a refusal of a sender hook are no-store."""
    payload = panic() if source == "m3" else escalation()
    body, headers = signed(source, payload)
    for expected in (202, 200):
        response = await relay.post(f"/hooks/{source}", data=body, headers=headers)
        assert response.status == expected, await response.text()
        assert_no_store(response)
    refused = await relay.post(f"/hooks/{source}", data=body, headers={"Content-Type": "application/json"})
    assert refused.status == 401
    assert_no_store(refused)


async def test_status_document_carries_no_store(relay: Relay) -> None:
    """`GET /v1/events/{id}`, opened by its status token or an admin bearer, or refused, is no-store."""
    accepted = await relay.send("m3", panic())
    by_token = await relay.get(accepted["status_url"])
    by_admin = await relay.get(f"/v1/events/{accepted['id']}", headers=ADMIN)
    refused = await relay.get(f"/v1/events/{accepted['id']}?token=not-a-token")
    assert (by_token.status, by_admin.status, refused.status) == (200, 200, 403)
    for response in (by_token, by_admin, refused):
        assert_no_store(response)


async def test_admin_answers_carry_no_store(relay: Relay) -> None:
    """Every /admin/* answer is no-store: lists, creations, and refusals."""
    responses = [
        await relay.post("/admin/agents", json=ANA, headers=ADMIN),
        await relay.get("/admin/agents", headers=ADMIN),
        await relay.get("/admin/agents/ana", headers=ADMIN),
        await relay.get("/admin/inbox", headers=ADMIN),
        await relay.get("/admin/audit", headers=ADMIN),
        await relay.get("/admin/consents", headers=ADMIN),
        await relay.get("/admin/agents"),
    ]
    assert [r.status for r in responses] == [201, 200, 200, 200, 200, 200, 401]
    for response in responses:
        assert_no_store(response)


async def test_action_link_pages_carry_no_store(relay: Relay) -> None:
    """The action-link page, the page after an answer, and a refused link are no-store."""
    _, invitation = await relay.invited()
    page = await relay.get(relay.link(invitation))
    answered = await relay.post(relay.link(invitation), data={"action": "ack", "response": "soft-checkin"})
    refused = await relay.get("/a/not-a-link")
    assert (page.status, answered.status, refused.status) == (200, 200, 403)
    for response in (page, answered, refused):
        assert_no_store(response)
