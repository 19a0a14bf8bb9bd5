"""The admin API: bearer auth, round trips, validation, pagination."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import BOTH_DATABASES
from tests.driver import ADMIN, Relay, panic, signal

ROUTES = [
    ("GET", "/admin/agents"),
    ("POST", "/admin/agents"),
    ("GET", "/admin/agents/ana"),
    ("PATCH", "/admin/agents/ana"),
    ("DELETE", "/admin/agents/ana"),
    ("GET", "/admin/consents"),
    ("POST", "/admin/consents"),
    ("DELETE", "/admin/consents/gr_x"),
    ("GET", "/admin/inbox"),
    ("GET", "/admin/audit"),
]


@pytest.mark.parametrize(("method", "path"), ROUTES)
async def test_admin_routes_need_a_valid_bearer(served: Relay, method: str, path: str) -> None:
    """No token is 401, a wrong token is 403, on every admin route."""
    none = await served.request(method, path)
    assert none.status == 401 and (await none.json())["error"] == "unauthorized"
    wrong = await served.request(method, path, headers={"Authorization": "Bearer nope"})
    assert wrong.status == 403 and (await wrong.json())["error"] == "forbidden"
    basic = await served.request(method, path, headers={"Authorization": "Basic YWRtaW46YWRtaW4="})
    assert basic.status == 401


@BOTH_DATABASES
async def test_agent_round_trip(served: Relay) -> None:
    """Create, read, patch, list and delete an agent in the contract's names."""
    body = {
        "id": "ana",
        "display": "Ana",
        "groups": ["care-circle"],
        "slack_user": "U0ANA",
        "phone": "+40722000111",
        "channels": ["slack", "sms"],
        "quiet_hours": "22:00-07:00",
        "tz": "Europe/Bucharest",
    }
    created = await served.post("/admin/agents", json=body, headers=ADMIN)
    assert created.status == 201
    agent = await created.json()
    assert {k: agent[k] for k in body} == body and agent["active"] is True and agent["whatsapp"] is None
    again = await served.post("/admin/agents", json=body, headers=ADMIN)
    assert again.status == 400
    patched = await served.patch(
        "/admin/agents/ana", json={"groups": ["care-circle", "night"], "active": False}, headers=ADMIN
    )
    assert patched.status == 200
    assert (await patched.json())["groups"] == ["care-circle", "night"]
    read = await (await served.get("/admin/agents/ana", headers=ADMIN)).json()
    assert read["active"] is False and read["phone"] == "+40722000111"
    listed = await (await served.get("/admin/agents", headers=ADMIN)).json()
    assert [a["id"] for a in listed["items"]] == ["ana"] and listed["next_cursor"] is None
    assert (await served.delete("/admin/agents/ana", headers=ADMIN)).status == 204
    assert (await served.get("/admin/agents/ana", headers=ADMIN)).status == 404
    assert (await served.delete("/admin/agents/ana", headers=ADMIN)).status == 404


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"display": "No id"}, ["id"]),
        ({"id": "x", "display": "X", "phone": "0722"}, ["phone"]),
        ({"id": "x", "display": "X", "channels": ["pager"]}, ["channels"]),
        ({"id": "x", "display": "X", "quiet_hours": "25:00-07:00"}, ["quiet_hours"]),
        ({"id": "x", "display": "X", "tz": "Mars/Olympus"}, ["tz"]),
        ({"id": "x", "display": "X", "surprise": 1}, ["surprise"]),
    ],
)
async def test_agent_validation(served: Relay, body: dict[str, Any], loc: list[str]) -> None:
    """Bad agent fields answer 422 naming the field."""
    response = await served.post("/admin/agents", json=body, headers=ADMIN)
    assert response.status == 422
    answer = await response.json()
    assert answer["error"] == "invalid_payload" and [f["loc"] for f in answer["fields"]] == [loc]


async def test_grant_round_trip_and_revocation_kept(served: Relay) -> None:
    """A grant is created (201), listed by subject, and revocation is recorded, not erased."""
    body = {
        "subject": "actor:raz",
        "scope": ["panic.ui"],
        "groups": ["care-circle"],
        "channels": ["slack"],
        "by": "lead",
    }
    grant = await (await served.post("/admin/consents", json=body, headers=ADMIN)).json()
    assert grant["id"].startswith("gr_") and grant["scope"] == ["panic.ui"] and grant["by"] == "lead"
    assert grant["revoked_at"] is None and grant["granted_at"]
    assert (await served.delete(f"/admin/consents/{grant['id']}?by=lead2", headers=ADMIN)).status == 204
    items = (await (await served.get("/admin/consents?subject=actor:raz", headers=ADMIN)).json())["items"]
    assert len(items) == 1 and items[0]["revoked_by"] == "lead2"
    assert (await (await served.get("/admin/consents?subject=actor:other", headers=ADMIN)).json())["items"] == []
    assert (await served.delete("/admin/consents/gr_missing", headers=ADMIN)).status == 404
    bad = await served.post("/admin/consents", json={**body, "subject": "raz"}, headers=ADMIN)
    assert bad.status == 422
    broken = await served.post("/admin/consents", data=b"{", headers={**ADMIN, "Content-Type": "application/json"})
    assert broken.status == 400 and (await broken.json())["error"] == "malformed_json"


async def test_inbox_pages_newest_first_and_filters(served: Relay) -> None:
    """The inbox pages with an opaque cursor, newest first, and filters by status."""
    ids = []
    for _ in range(5):
        payload = panic()
        await served.send("m3", payload)
        ids.append(payload["id"])
    trigger = signal("aisha", "care.trigger_detected__golden")
    await served.send("aisha", trigger)

    first = await (await served.get("/admin/inbox?limit=4", headers=ADMIN)).json()
    assert [i["id"] for i in first["items"]] == [trigger["event_id"], *ids[::-1][:3]]
    second = await (await served.get(f"/admin/inbox?limit=4&cursor={first['next_cursor']}", headers=ADMIN)).json()
    assert [i["id"] for i in second["items"]] == ids[::-1][3:] and second["next_cursor"] is None
    only = await (await served.get("/admin/inbox?status=inbox_only", headers=ADMIN)).json()
    assert [i["id"] for i in only["items"]] == [trigger["event_id"]]
    assert (await served.get("/admin/inbox?status=nonsense", headers=ADMIN)).status == 400
    assert (await served.get("/admin/inbox?cursor=%%%", headers=ADMIN)).status == 400
    assert (await served.get("/admin/inbox?limit=0", headers=ADMIN)).status == 400


async def test_an_address_belongs_to_one_agent(served: Relay) -> None:
    """Two agents cannot share a Slack user or a number: answers are matched by it."""
    first = {"id": "ana", "display": "Ana", "slack_user": "U0ANA", "phone": "+40722000111"}
    assert (await served.post("/admin/agents", json=first, headers=ADMIN)).status == 201
    for clash in ({"slack_user": "U0ANA"}, {"phone": "+40722000111"}):
        response = await served.post("/admin/agents", json={"id": "bo", "display": "Bo", **clash}, headers=ADMIN)
        assert response.status == 400 and "already has this" in (await response.json())["detail"]
    assert (await served.post("/admin/agents", json={"id": "bo", "display": "Bo"}, headers=ADMIN)).status == 201
    patched = await served.patch("/admin/agents/bo", json={"slack_user": "U0ANA"}, headers=ADMIN)
    assert patched.status == 400


async def test_patch_with_null(served: Relay) -> None:
    """null clears an address and empties a list; a name or the active switch cannot be null; intake goes on."""
    body = {"id": "ana", "display": "Ana", "groups": ["care-circle"], "phone": "+40722000111", "channels": ["sms"]}
    assert (await served.post("/admin/agents", json=body, headers=ADMIN)).status == 201
    patched = await served.patch(
        "/admin/agents/ana", json={"groups": None, "channels": None, "phone": None}, headers=ADMIN
    )
    assert patched.status == 200
    agent = await patched.json()
    assert (agent["groups"], agent["channels"], agent["phone"], agent["display"]) == ([], [], None, "Ana")
    for field in ("display", "active"):
        refused = await served.patch("/admin/agents/ana", json={field: None}, headers=ADMIN)
        assert refused.status == 422
        assert (await refused.json())["fields"] == [
            {"loc": [field], "msg": f"{field} cannot be null; leave it out to keep it"}
        ]
    assert (await (await served.get("/admin/agents/ana", headers=ADMIN)).json())["display"] == "Ana"
    # the directory with the emptied agent still routes the next signal
    await served.send("m3", panic())


async def test_cursor_out_of_range_and_deep_json_are_400(served: Relay) -> None:
    """A cursor no page could have made, or JSON nested past what the parser takes, is a 400, not a 500."""
    import base64

    for value in ("0", "-5", str(2**70)):
        cursor = base64.urlsafe_b64encode(value.encode()).decode().rstrip("=")
        for route in ("/admin/inbox", "/admin/audit"):
            response = await served.get(f"{route}?cursor={cursor}", headers=ADMIN)
            assert response.status == 400 and (await response.json())["error"] == "bad_request"
    deep = b"[" * 100_000 + b"]" * 100_000
    response = await served.post("/admin/agents", data=deep, headers={**ADMIN, "Content-Type": "application/json"})
    assert response.status == 400 and (await response.json())["error"] == "malformed_json"


async def test_grant_with_an_id_of_its_own(served: Relay) -> None:
    """POST may name the grant's id; a taken id is refused, since a grant is never replaced."""
    body = {"id": "crm-4411", "subject": "actor:raz", "scope": ["panic.ui"], "groups": ["care-circle"], "by": "lead"}
    created = await served.post("/admin/consents", json=body, headers=ADMIN)
    assert created.status == 201 and (await created.json())["id"] == "crm-4411"
    again = await served.post("/admin/consents", json={**body, "scope": ["status.set"]}, headers=ADMIN)
    assert again.status == 400 and "already exists" in (await again.json())["detail"]
    items = (await (await served.get("/admin/consents?subject=actor:raz", headers=ADMIN)).json())["items"]
    assert [(g["id"], g["scope"]) for g in items] == [("crm-4411", ["panic.ui"])]
    bad = await served.post("/admin/consents", json={**body, "id": "has space"}, headers=ADMIN)
    assert bad.status == 422 and [f["loc"] for f in (await bad.json())["fields"]] == [["id"]]
