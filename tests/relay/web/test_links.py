"""Action links (`/a/{token}`): the page shows and changes nothing; a press records care.ack or care.done."""

from __future__ import annotations

import re
import time

import pytest

from relay.keys import TOKENS
from relay.tokens import Tokens
from tests.conftest import Clock
from tests.driver import ADMIN, AISHA_GRANT, Start, escalation, panic
from tests.support import LINK_SECRETS

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def code_of(html: str) -> str | None:
    match = re.search(r'<main data-status="\d+" data-code="([a-z_]+)"', html)
    return match.group(1) if match else None


async def test_get_shows_the_invitation_and_records_nothing(start: Start) -> None:
    """GET (and HEAD) show the whisper and one button per response, and record nothing at all."""
    relay = await start(run_outbox=True)
    answer, invitation = await relay.invited()
    before = await relay.audit()
    for _ in range(2):
        response = await relay.get(relay.link(invitation))
        assert response.status == 200
        html = await response.text()
    assert (await relay.head(relay.link(invitation))).status == 200
    assert response.content_type == "text/html"
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["X-Robots-Tag"].startswith("noindex")
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "style-src 'unsafe-inline'" in csp and "form-action 'self'" in csp
    assert '<html lang="en">' in html and 'name="viewport"' in html and "<script" not in html
    assert "Raz sent a gentle signal: &#34;Sunt aici. Nu e urgență. Aș vrea însoțire.&#34;" in html
    buttons = re.findall(r'<button type="submit" name="response" value="([^"]+)">([^<]+)<', html)
    assert buttons == [("soft-checkin", "Check in gently"), ("hold-space", "Hold space")]
    # answer, close, and "Not now" (nobody else to ask here)
    assert html.count('<form method="post"') == 3 and 'name="action" value="ack"' in html
    assert '<details class="close">' in html  # closing waits behind "I was there" until an answer
    assert '<label for="outcome">' in html and '<label for="note">' in html and "Close the loop" in html
    loop = await relay.loop(answer)
    assert loop["status"] == "invited" and loop["acks"] == [] and loop["done"] is None
    assert await relay.audit() == before
    assert not [a for a in before if a["kind"] in ("ack", "done", "refusal")]


async def test_console_link_opens_the_page(start: Start, capsys: pytest.CaptureFixture[str]) -> None:
    """The action link the console channel prints opens this invitation's page."""
    relay = await start(run_outbox=True)  # sent only by the drain below
    await relay.invited()
    await relay.drain()
    printed = re.findall(r"Or open (\S+)", capsys.readouterr().out)
    assert len(printed) == 1 and printed[0].startswith("http://127.0.0.1:8080/a/")
    response = await relay.get(printed[0].removeprefix("http://127.0.0.1:8080"))
    assert response.status == 200 and "An invitation for Ana" in await response.text()


async def test_post_ack_records_care_ack(start: Start) -> None:
    """Pressing a response records care.ack by the invitation's agent, via the link, and says so."""
    relay = await start(run_outbox=True)
    answer, invitation = await relay.invited()
    status, html = await relay.press(relay.link(invitation), action="ack", response="soft-checkin")
    assert status == 200
    assert "Thank you, Ana — recorded: Check in gently" in html
    assert 'name="response"' not in html and "Close the loop" in html  # answered: only closing is left
    loop = await relay.loop(answer)
    assert loop["status"] == "acked" and loop["done"] is None
    (ack,) = loop["acks"]
    assert ack["type"] == "care.ack" and ack["action"] == "soft-checkin"
    assert ack["by"] == {"id": "ana", "display": "Ana"}
    (row,) = [a for a in await relay.audit() if a["kind"] == "ack"]
    assert row["agent"] == "ana" and row["detail"]["via"] == "link" and row["action_origin"] == "user_directed"


async def test_ack_twice_is_idempotent(start: Start) -> None:
    """A second press (a refresh, another button) says it was already recorded and keeps the first."""
    relay = await start(run_outbox=True)
    answer, invitation = await relay.invited()
    await relay.press(relay.link(invitation), action="ack", response="soft-checkin")
    status, html = await relay.press(relay.link(invitation), action="ack", response="hold-space")
    assert status == 200 and "Already recorded: Check in gently" in html
    loop = await relay.loop(answer)
    assert [a["action"] for a in loop["acks"]] == ["soft-checkin"]
    assert len([a for a in await relay.audit() if a["kind"] == "ack"]) == 1


async def test_post_done_records_care_done(start: Start) -> None:
    """Closing the loop records care.done with the outcome and note; the page then offers nothing more."""
    relay = await start(run_outbox=True)
    answer, invitation = await relay.invited()
    note = "We talked for a while.\r\nAll calm."
    status, html = await relay.press(relay.link(invitation), action="done", outcome="  held-space ", note=note)
    assert status == 200 and "Thank you, Ana — recorded: I held space" in html
    loop = await relay.loop(answer)
    assert loop["status"] == "done"
    assert loop["done"]["by"] == {"id": "ana", "display": "Ana"}
    assert loop["done"]["outcome"] == "held-space" and loop["done"]["note"] == "We talked for a while.\nAll calm."
    assert [a["action"] for a in loop["acks"]] == ["held-space"]  # a done without ack is also the ack
    page = await (await relay.get(relay.link(invitation))).text()
    assert "This loop is closed" in page and "You closed the loop — I held space." in page
    assert "<form" not in page and "We talked" not in page
    (row,) = [a for a in await relay.audit() if a["kind"] == "done"]
    assert row["detail"]["via"] == "link" and row["detail"]["outcome"] == "held-space"


async def test_done_after_done_and_ack_after_done_are_409(start: Start) -> None:
    """Once closed, a second close and a late ack both answer 409 already_done and change nothing."""
    relay = await start(run_outbox=True)
    answer, invitation = await relay.invited()
    assert (await relay.press(relay.link(invitation), action="done", outcome="held-space", note=""))[0] == 200
    status, html = await relay.press(relay.link(invitation), action="done", outcome="checked-in", note="again")
    assert status == 409 and code_of(html) == "already_done"
    assert (
        "This loop is already closed" in html and "You closed it — I held space" in html and "409 already_done" in html
    )
    status, html = await relay.press(relay.link(invitation), action="ack", response="soft-checkin")
    assert status == 409 and code_of(html) == "already_done" and "<form" not in html
    status, html = await relay.press(relay.link(invitation), action="ack", response="not-offered")
    assert status == 409 and code_of(html) == "already_done"
    loop = await relay.loop(answer)
    assert loop["done"]["outcome"] == "held-space" and loop["done"]["note"] == ""
    assert len(loop["acks"]) == 1


async def test_expired_link_is_410(start: Start, clock: Clock) -> None:
    """A link older than RELAY_LINK_MAX_AGE_SEC, on the relay's clock, answers 410 link_expired,
    GET and POST, and records nothing."""
    clock.fixed = time.time()
    relay = await start(run_outbox=True, relay_link_max_age_sec=60)
    answer, invitation = await relay.invited()
    path = relay.link(invitation)
    clock.fixed += 60  # a minute old: the last second it opens
    assert (await relay.get(path)).status == 200
    clock.fixed += 1
    response = await relay.get(path)
    html = await response.text()
    assert response.status == 410 and code_of(html) == "link_expired"
    assert "This link has expired" in html and "Sunt aici" not in html
    assert response.headers["Cache-Control"] == "no-store"
    status, html = await relay.press(path, action="ack", response="soft-checkin")
    assert status == 410 and code_of(html) == "link_expired"
    assert (await relay.loop(answer))["acks"] == []


async def test_tampered_and_foreign_links_are_403(start: Start) -> None:
    """A changed token, a token signed with an unknown key, or a status token: 403 forbidden, nothing shown."""
    relay = await start(run_outbox=True)
    answer, invitation = await relay.invited()
    token = relay.app[TOKENS].action_token(invitation)
    flipped = token[:-3] + ("A" if token[-3] != "A" else "B") + token[-2:]
    foreign = Tokens(("some-other-key",), 3600).action_token(invitation)
    status_token = answer["status_url"].split("token=", 1)[1]
    for bad in (flipped, foreign, status_token, "x" * 600, "not-a-token"):
        response = await relay.get(f"/a/{bad}")
        html = await response.text()
        assert response.status == 403 and code_of(html) == "forbidden", bad
        assert "Sunt aici" not in html
        status, html = await relay.press(f"/a/{bad}", action="ack", response="soft-checkin")
        assert status == 403 and code_of(html) == "forbidden"
    # a client that asks for JSON only gets the contract's JSON error; a browser (html among others) the page
    response = await relay.get(f"/a/{flipped}", headers={"Accept": "application/json"})
    assert response.status == 403 and response.content_type == "application/json"
    assert (await response.json())["error"] == "forbidden"
    response = await relay.get(f"/a/{flipped}", headers={"Accept": "text/html,application/json;q=0.9"})
    assert response.status == 403 and response.content_type == "text/html"
    assert (await relay.loop(answer))["acks"] == []


async def test_link_signed_with_the_old_key_still_opens(start: Start) -> None:
    """After a key rotation (old, new), a link signed when only the old key existed still opens and answers."""
    relay = await start(run_outbox=True)
    assert relay.app[TOKENS].secrets == LINK_SECRETS
    answer, invitation = await relay.invited()
    before_rotation = Tokens(LINK_SECRETS[:1], 3600).action_token(invitation)
    assert before_rotation != relay.app[TOKENS].action_token(invitation)
    assert (await relay.get(f"/a/{before_rotation}")).status == 200
    status, _ = await relay.press(f"/a/{before_rotation}", action="ack", response="hold-space")
    assert status == 200
    assert (await relay.loop(answer))["acks"][0]["action"] == "hold-space"


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
async def test_invalid_answers_are_400(start: Start, fields: dict[str, str], says: str) -> None:
    """An unknown response or action, or an empty/long outcome or long note: 400 page, nothing recorded."""
    relay = await start(run_outbox=True)
    answer, invitation = await relay.invited()
    status, html = await relay.press(relay.link(invitation), **fields)
    assert status == 400 and code_of(html) == "bad_request" and says in html
    assert 'role="alert"' in html and "<form" in html  # the invitation again, to fix and retry
    if fields.get("note", "").startswith("n"):
        assert "n" * 1001 in html  # what was typed is kept
    loop = await relay.loop(answer)
    assert loop["status"] == "invited" and loop["acks"] == [] and loop["done"] is None


async def test_form_body_limits(start: Start) -> None:
    """A body past the form cap is 413, a non-form body 415, bad UTF-8 400: pages, nothing recorded."""
    relay = await start(run_outbox=True)
    answer, invitation = await relay.invited()
    path = relay.link(invitation)
    response = await relay.post(path, data=b"action=done&outcome=x&note=" + b"n" * 9000, headers=FORM)
    assert response.status == 413 and code_of(await response.text()) == "payload_too_large"
    response = await relay.post(path, json={"action": "ack", "response": "soft-checkin"})
    assert response.status == 415 and code_of(await response.text()) == "unsupported_media_type"
    response = await relay.post(path, data=b"action=ack&response=%FF%FE", headers=FORM)
    assert response.status == 400 and code_of(await response.text()) == "bad_request"
    assert (await relay.loop(answer))["acks"] == []


async def test_whisper_is_escaped(start: Start) -> None:
    """A whisper with markup is shown as text, never as HTML."""
    relay = await start(run_outbox=True)
    payload = panic()
    payload["intent"]["whisper"] = '<script>alert("x")</script><b>hi</b>'
    _, invitation = await relay.invited(payload)
    html = await (await relay.get(relay.link(invitation))).text()
    assert "<script" not in html and "<b>hi" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&lt;b&gt;hi&lt;/b&gt;" in html


@pytest.mark.parametrize("how", ["deactivated", "removed"])
async def test_link_of_an_agent_no_longer_active_is_403(start: Start, how: str) -> None:
    """Once an agent is deactivated or removed, their link shows nothing and a press leaves only an audit line."""
    relay = await start(run_outbox=True)
    answer, invitation = await relay.invited()
    if how == "deactivated":
        response = await relay.patch("/admin/agents/ana", json={"active": False}, headers=ADMIN)
        assert response.status == 200, await response.text()
    else:
        assert (await relay.delete("/admin/agents/ana", headers=ADMIN)).status == 204
    response = await relay.get(relay.link(invitation))
    html = await response.text()
    assert response.status == 403 and code_of(html) == "forbidden" and "Sunt aici" not in html
    assert not [a for a in await relay.audit() if a["kind"] == "refusal"]  # a GET records nothing, not even this
    status, html = await relay.press(relay.link(invitation), action="ack", response="soft-checkin")
    assert status == 403 and code_of(html) == "forbidden"
    (refusal,) = [a for a in await relay.audit() if a["kind"] == "refusal"]
    assert refusal["agent"] == "ana" and refusal["detail"]["via"] == "link"
    assert (await relay.loop(answer))["acks"] == []


async def test_link_to_a_purged_signal_is_410(start: Start) -> None:
    """Once retention purged the signal's body there is nothing to show: 410 link_expired, nothing recorded."""
    relay = await start(run_outbox=True)
    answer, invitation = await relay.invited()
    await relay.sql("UPDATE signal SET body = NULL")  # what retention does to a signal past its age
    response = await relay.get(relay.link(invitation))
    html = await response.text()
    assert response.status == 410 and code_of(html) == "link_expired" and "older than the relay keeps" in html
    status, _ = await relay.press(relay.link(invitation), action="ack", response="soft-checkin")
    assert status == 410 and (await relay.loop(answer))["acks"] == []


async def test_unknown_invitation_is_404(start: Start) -> None:
    """A well-signed link to an invitation the relay does not know: 404 page."""
    relay = await start(run_outbox=True)
    response = await relay.get(relay.link(987654))
    assert response.status == 404 and code_of(await response.text()) == "not_found"


async def test_aisha_page_shows_reasons_and_deep_link(start: Start) -> None:
    """An AiSHA invitation shows the reasons in plain words, the deep link, and the configured response."""
    relay = await start(run_outbox=True, aisha_app_base_url="https://app.example")
    await relay.seed(AISHA_GRANT)
    answer = await relay.send("aisha", escalation())
    assert answer["status"] == "invited", answer
    invitation = await relay.invitation_id(answer["id"])
    html = await (await relay.get(relay.link(invitation))).text()
    assert "A contact could use a person: asked for a person, sounded unhappy (high confidence)." in html
    assert 'href="https://app.example/app/contacts/6b1c8f0e-2d4a-4e5b-8c9d-0e1f2a3b4c5d"' in html
    assert 'rel="noopener noreferrer"' in html
    assert re.findall(r'name="response" value="([^"]+)"', html) == ["on-it"]
    for word in ("urgent", "alert", "escalation"):
        assert word not in html.lower().replace('role="alert"', "")
    status, html = await relay.press(relay.link(invitation), action="ack", response="on-it")
    assert status == 200 and "Thank you, Ana — recorded: I&#39;ll reach out" in html
    assert (await relay.loop(answer))["status"] == "acked"
