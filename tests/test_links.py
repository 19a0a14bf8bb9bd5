"""Action links (`/a/{token}`): the page shows and changes nothing; a press records care.ack or care.done."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from inbox import store
from relay.app import create_app
from relay.state import ENGINE, OUTBOX, TOKENS, WRITER
from relay.tokens import Tokens
from tests.support import ADMIN_TOKEN, LINK_SECRETS, fixture, fresh, make_settings, signed

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
TENANT = "a11dfb63-4b18-4eb8-872e-747af2e37c46"
ANA = {"id": "ana", "display": "Ana", "groups": ["care-circle"], "channels": ["console"]}
GRANT = {"subject": "actor:raz", "scope": ["panic.ui", "status.set"], "groups": ["care-circle"], "by": "admin"}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture
def start(aiohttp_client: Any, database_url: str) -> Callable[..., Any]:
    """Start the real app (dev mode: console channel) on a fresh SQLite file."""

    async def run(run_outbox: bool = True, **overrides: Any) -> TestClient:
        settings = make_settings(database_url, dev=True, **overrides)
        return await aiohttp_client(create_app(settings, run_outbox=run_outbox))

    return run


async def seed(client: TestClient, *, grant: dict[str, Any] = GRANT, agent: dict[str, Any] = ANA) -> None:
    for path, body in (("/admin/agents", agent), ("/admin/consents", grant)):
        response = await client.post(path, json=body, headers=ADMIN)
        assert response.status == 201, await response.text()


async def send(client: TestClient, source: str, payload: dict[str, Any]) -> dict[str, Any]:
    body, headers = signed(source, payload)
    response = await client.post(f"/hooks/{source}", data=body, headers=headers)
    assert response.status == 202, await response.text()
    answer = await response.json()
    assert answer["status"] == "invited", answer
    return answer


def panic(**intent: Any) -> dict[str, Any]:
    payload = fresh("m3", fixture("m3", "panic.ui__golden"))
    payload["intent"].update(intent)
    return payload


async def invited(client: TestClient, payload: dict[str, Any] | None = None) -> tuple[dict[str, Any], int]:
    """Seed Ana and a grant, send a panic.ui, and return the 202 and Ana's invitation id."""
    await seed(client)
    answer = await send(client, "m3", payload or panic())
    return answer, await invitation_id(client, answer["id"])


async def invitation_id(client: TestClient, event_id: str) -> int:
    engine = client.app[ENGINE]
    (signal,) = await store.find_signals(engine, event_id)
    (invitation,) = (await store.loop_detail(engine, signal.id))["invitations"]
    return int(invitation["id"])


def link(client: TestClient, invitation: int) -> str:
    return f"/a/{client.app[TOKENS].action_token(invitation)}"


async def loop_of(client: TestClient, answer: dict[str, Any]) -> dict[str, Any]:
    return await (await client.get(answer["status_url"])).json()


async def audit(client: TestClient) -> list[dict[str, Any]]:
    return (await (await client.get("/admin/audit?limit=200", headers=ADMIN)).json())["items"]


async def press(client: TestClient, path: str, **fields: str) -> tuple[int, str]:
    response = await client.post(path, data=fields)
    return response.status, await response.text()


def code_of(html: str) -> str | None:
    match = re.search(r'<main data-status="\d+" data-code="([a-z_]+)"', html)
    return match.group(1) if match else None


async def test_get_shows_the_invitation_and_records_nothing(start: Any) -> None:
    """GET (and HEAD) show the whisper and one button per response, and record nothing at all."""
    client = await start()
    answer, invitation = await invited(client)
    before = await audit(client)
    for _ in range(2):
        response = await client.get(link(client, invitation))
        assert response.status == 200
        html = await response.text()
    assert (await client.head(link(client, invitation))).status == 200
    assert response.content_type == "text/html"
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["X-Robots-Tag"].startswith("noindex")
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "style-src 'unsafe-inline'" in csp and "form-action 'self'" in csp
    assert '<html lang="en">' in html and 'name="viewport"' in html and "<script" not in html
    assert "Raz sent a gentle signal: &#34;Sunt aici. Nu e urgență. Aș vrea însoțire.&#34;" in html
    buttons = re.findall(r'<button type="submit" name="response" value="([^"]+)">', html)
    assert buttons == ["soft-checkin", "hold-space"]
    assert html.count('<form method="post">') == 2 and 'name="action" value="ack"' in html
    assert '<label for="outcome">' in html and '<label for="note">' in html and "Close the loop" in html
    loop = await loop_of(client, answer)
    assert loop["status"] == "invited" and loop["acks"] == [] and loop["done"] is None
    assert await audit(client) == before
    assert not [a for a in before if a["kind"] in ("ack", "done", "refusal")]


async def test_console_link_opens_the_page(start: Any, capsys: pytest.CaptureFixture[str]) -> None:
    """The action link the console channel prints opens this invitation's page."""
    client = await start(run_outbox=False)  # sent only by the drain below
    await invited(client)
    await client.app[OUTBOX].drain()
    printed = re.findall(r"Or open (\S+)", capsys.readouterr().out)
    assert len(printed) == 1 and printed[0].startswith("http://127.0.0.1:8080/a/")
    response = await client.get(printed[0].removeprefix("http://127.0.0.1:8080"))
    assert response.status == 200 and "An invitation for Ana" in await response.text()


async def test_post_ack_records_care_ack(start: Any) -> None:
    """Pressing a response records care.ack by the invitation's agent, via the link, and says so."""
    client = await start()
    answer, invitation = await invited(client)
    status, html = await press(client, link(client, invitation), action="ack", response="soft-checkin")
    assert status == 200
    assert "Thank you, Ana — recorded: soft-checkin" in html
    assert 'name="response"' not in html and "Close the loop" in html  # answered: only closing is left
    loop = await loop_of(client, answer)
    assert loop["status"] == "acked" and loop["done"] is None
    (ack,) = loop["acks"]
    assert ack["type"] == "care.ack" and ack["action"] == "soft-checkin"
    assert ack["by"] == {"id": "ana", "display": "Ana"}
    (row,) = [a for a in await audit(client) if a["kind"] == "ack"]
    assert row["agent"] == "ana" and row["detail"]["via"] == "link" and row["action_origin"] == "user_directed"


async def test_ack_twice_is_idempotent(start: Any) -> None:
    """A second press (a refresh, another button) says it was already recorded and keeps the first."""
    client = await start()
    answer, invitation = await invited(client)
    await press(client, link(client, invitation), action="ack", response="soft-checkin")
    status, html = await press(client, link(client, invitation), action="ack", response="hold-space")
    assert status == 200 and "Already recorded: soft-checkin" in html
    loop = await loop_of(client, answer)
    assert [a["action"] for a in loop["acks"]] == ["soft-checkin"]
    assert len([a for a in await audit(client) if a["kind"] == "ack"]) == 1


async def test_post_done_records_care_done(start: Any) -> None:
    """Closing the loop records care.done with the outcome and note; the page then offers nothing more."""
    client = await start()
    answer, invitation = await invited(client)
    note = "We talked for a while.\r\nAll calm."
    status, html = await press(client, link(client, invitation), action="done", outcome="  held-space ", note=note)
    assert status == 200 and "Thank you, Ana — recorded: held-space" in html
    loop = await loop_of(client, answer)
    assert loop["status"] == "done"
    assert loop["done"]["by"] == {"id": "ana", "display": "Ana"}
    assert loop["done"]["outcome"] == "held-space" and loop["done"]["note"] == "We talked for a while.\nAll calm."
    assert [a["action"] for a in loop["acks"]] == ["held-space"]  # a done without ack is also the ack
    page = await (await client.get(link(client, invitation))).text()
    assert "This loop is closed" in page and "You closed the loop — held-space." in page
    assert "<form" not in page and "We talked" not in page
    (row,) = [a for a in await audit(client) if a["kind"] == "done"]
    assert row["detail"]["via"] == "link" and row["detail"]["outcome"] == "held-space"


async def test_done_after_done_and_ack_after_done_are_409(start: Any) -> None:
    """Once closed, a second close and a late ack both answer 409 already_done and change nothing."""
    client = await start()
    answer, invitation = await invited(client)
    assert (await press(client, link(client, invitation), action="done", outcome="held-space", note=""))[0] == 200
    status, html = await press(client, link(client, invitation), action="done", outcome="checked-in", note="again")
    assert status == 409 and code_of(html) == "already_done"
    assert "This loop is already closed" in html and "You closed it — held-space" in html and "409 already_done" in html
    status, html = await press(client, link(client, invitation), action="ack", response="soft-checkin")
    assert status == 409 and code_of(html) == "already_done" and "<form" not in html
    status, html = await press(client, link(client, invitation), action="ack", response="not-offered")
    assert status == 409 and code_of(html) == "already_done"
    loop = await loop_of(client, answer)
    assert loop["done"]["outcome"] == "held-space" and loop["done"]["note"] == ""
    assert len(loop["acks"]) == 1


async def test_expired_link_is_410(start: Any) -> None:
    """A link older than RELAY_LINK_MAX_AGE_SEC answers 410 link_expired, GET and POST, and records nothing."""
    client = await start(relay_link_max_age_sec=1)
    answer, invitation = await invited(client)
    path = link(client, invitation)
    assert (await client.get(path)).status == 200
    await asyncio.sleep(2.1)  # itsdangerous reads time.time() in whole seconds: age 2 > max age 1
    response = await client.get(path)
    html = await response.text()
    assert response.status == 410 and code_of(html) == "link_expired"
    assert "This link has expired" in html and "Sunt aici" not in html
    assert response.headers["Cache-Control"] == "no-store"
    status, html = await press(client, path, action="ack", response="soft-checkin")
    assert status == 410 and code_of(html) == "link_expired"
    assert (await loop_of(client, answer))["acks"] == []


async def test_tampered_and_foreign_links_are_403(start: Any) -> None:
    """A changed token, a token signed with an unknown key, or a status token: 403 forbidden, nothing shown."""
    client = await start()
    answer, invitation = await invited(client)
    token = client.app[TOKENS].action_token(invitation)
    flipped = token[:-3] + ("A" if token[-3] != "A" else "B") + token[-2:]
    foreign = Tokens(("some-other-key",), 3600).action_token(invitation)
    status_token = answer["status_url"].split("token=", 1)[1]
    for bad in (flipped, foreign, status_token, "x" * 600, "not-a-token"):
        response = await client.get(f"/a/{bad}")
        html = await response.text()
        assert response.status == 403 and code_of(html) == "forbidden", bad
        assert "Sunt aici" not in html
        status, html = await press(client, f"/a/{bad}", action="ack", response="soft-checkin")
        assert status == 403 and code_of(html) == "forbidden"
    # a client that asks for JSON only gets the contract's JSON error; a browser (html among others) the page
    response = await client.get(f"/a/{flipped}", headers={"Accept": "application/json"})
    assert response.status == 403 and response.content_type == "application/json"
    assert (await response.json())["error"] == "forbidden"
    response = await client.get(f"/a/{flipped}", headers={"Accept": "text/html,application/json;q=0.9"})
    assert response.status == 403 and response.content_type == "text/html"
    assert (await loop_of(client, answer))["acks"] == []


async def test_link_signed_with_the_old_key_still_opens(start: Any) -> None:
    """After a key rotation (old, new), a link signed when only the old key existed still opens and answers."""
    client = await start()
    assert client.app[TOKENS].secrets == LINK_SECRETS
    answer, invitation = await invited(client)
    before_rotation = Tokens(LINK_SECRETS[:1], 3600).action_token(invitation)
    assert before_rotation != client.app[TOKENS].action_token(invitation)
    assert (await client.get(f"/a/{before_rotation}")).status == 200
    status, _ = await press(client, f"/a/{before_rotation}", action="ack", response="hold-space")
    assert status == 200
    assert (await loop_of(client, answer))["acks"][0]["action"] == "hold-space"


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"action": "ack", "response": "nudge"}, "Please choose one of the answers below."),
        ({"action": "ack"}, "Please choose one of the answers below."),
        ({"action": "escalate"}, "Please choose one of the answers below."),
        ({"action": "done", "outcome": "   ", "note": "x"}, "Please say in a few words what happened"),
        ({"action": "done", "outcome": "o" * 101, "note": ""}, "Please say in a few words what happened"),
        ({"action": "done", "outcome": "held-space", "note": "n" * 1001}, "The note can be up to 1000 characters"),
    ],
)
async def test_invalid_answers_are_400(start: Any, fields: dict[str, str], says: str) -> None:
    """An unknown response or action, or an empty/long outcome or long note: 400 page, nothing recorded."""
    client = await start()
    answer, invitation = await invited(client)
    status, html = await press(client, link(client, invitation), **fields)
    assert status == 400 and code_of(html) == "bad_request" and says in html
    assert 'role="alert"' in html and "<form" in html  # the invitation again, to fix and retry
    if fields.get("note", "").startswith("n"):
        assert "n" * 1001 in html  # what was typed is kept
    loop = await loop_of(client, answer)
    assert loop["status"] == "invited" and loop["acks"] == [] and loop["done"] is None


async def test_form_body_limits(start: Any) -> None:
    """A body past the form cap is 413, a non-form body 415, bad UTF-8 400: pages, nothing recorded."""
    client = await start()
    answer, invitation = await invited(client)
    path = link(client, invitation)
    response = await client.post(path, data=b"action=done&outcome=x&note=" + b"n" * 9000, headers=FORM)
    assert response.status == 413 and code_of(await response.text()) == "payload_too_large"
    response = await client.post(path, json={"action": "ack", "response": "soft-checkin"})
    assert response.status == 415 and code_of(await response.text()) == "unsupported_media_type"
    response = await client.post(path, data=b"action=ack&response=%FF%FE", headers=FORM)
    assert response.status == 400 and code_of(await response.text()) == "bad_request"
    assert (await loop_of(client, answer))["acks"] == []


async def test_whisper_is_escaped(start: Any) -> None:
    """A whisper with markup is shown as text, never as HTML."""
    client = await start()
    _, invitation = await invited(client, panic(whisper='<script>alert("x")</script><b>hi</b>'))
    html = await (await client.get(link(client, invitation))).text()
    assert "<script" not in html and "<b>hi" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&lt;b&gt;hi&lt;/b&gt;" in html


@pytest.mark.parametrize("how", ["deactivated", "removed"])
async def test_link_of_an_agent_no_longer_active_is_403(start: Any, how: str) -> None:
    """Once an agent is deactivated or removed, their link shows nothing and a press leaves only an audit line."""
    client = await start()
    answer, invitation = await invited(client)
    if how == "deactivated":
        response = await client.patch("/admin/agents/ana", json={"active": False}, headers=ADMIN)
        assert response.status == 200, await response.text()
    else:
        assert (await client.delete("/admin/agents/ana", headers=ADMIN)).status == 204
    response = await client.get(link(client, invitation))
    html = await response.text()
    assert response.status == 403 and code_of(html) == "forbidden" and "Sunt aici" not in html
    assert not [a for a in await audit(client) if a["kind"] == "refusal"]  # a GET records nothing, not even this
    status, html = await press(client, link(client, invitation), action="ack", response="soft-checkin")
    assert status == 403 and code_of(html) == "forbidden"
    (refusal,) = [a for a in await audit(client) if a["kind"] == "refusal"]
    assert refusal["agent"] == "ana" and refusal["detail"]["via"] == "link"
    assert (await loop_of(client, answer))["acks"] == []


async def test_link_to_a_purged_signal_is_410(start: Any) -> None:
    """Once retention purged the signal's body there is nothing to show: 410 link_expired, nothing recorded."""
    client = await start()
    answer, invitation = await invited(client)
    far_future_ms = 10**13
    await client.app[WRITER].run(lambda tx: store.purge_bodies(tx, far_future_ms))
    response = await client.get(link(client, invitation))
    html = await response.text()
    assert response.status == 410 and code_of(html) == "link_expired" and "older than the relay keeps" in html
    status, _ = await press(client, link(client, invitation), action="ack", response="soft-checkin")
    assert status == 410 and (await loop_of(client, answer))["acks"] == []


async def test_unknown_invitation_is_404(start: Any) -> None:
    """A well-signed link to an invitation the relay does not know: 404 page."""
    client = await start()
    response = await client.get(link(client, 987654))
    assert response.status == 404 and code_of(await response.text()) == "not_found"


async def test_aisha_page_shows_reasons_and_deep_link(start: Any) -> None:
    """An AiSHA invitation shows the reasons in plain words, the deep link, and the configured response."""
    client = await start(aisha_app_base_url="https://app.example")
    scope = ["care.escalation_detected"]
    await seed(client, grant={"subject": f"tenant:{TENANT}", "scope": scope, "groups": ["care-circle"], "by": "admin"})
    answer = await send(client, "aisha", fresh("aisha", fixture("aisha", "care.escalation_detected__golden")))
    invitation = await invitation_id(client, answer["id"])
    html = await (await client.get(link(client, invitation))).text()
    assert "A contact could use a person: asked for a person, sounded unhappy (high confidence)." in html
    assert 'href="https://app.example/app/contacts/6b1c8f0e-2d4a-4e5b-8c9d-0e1f2a3b4c5d"' in html
    assert 'rel="noopener noreferrer"' in html
    assert re.findall(r'name="response" value="([^"]+)"', html) == ["on-it"]
    for word in ("urgent", "alert", "escalation"):
        assert word not in html.lower().replace('role="alert"', "")
    status, html = await press(client, link(client, invitation), action="ack", response="on-it")
    assert status == 200 and "Thank you, Ana — recorded: on-it" in html
    assert (await loop_of(client, answer))["status"] == "acked"
