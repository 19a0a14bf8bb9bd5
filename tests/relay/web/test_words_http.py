"""What people read over HTTP (CONTRACT section 9): agents' locale, the link page, the status page."""

from __future__ import annotations

import html
import re
import time
from typing import Any

import pytest

from tests.conftest import Clock
from tests.driver import ADMIN, AISHA_GRANT, ANA, GRANT, Start, escalation, panic

ANA_RO = {**ANA, "locale": "ro"}
BO_EN = {"id": "bo", "display": "Bo", "groups": ["care-circle"], "channels": ["console"]}
HTML = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}


async def test_an_agent_has_a_locale_and_another_language_is_refused(start: Start) -> None:
    """POST and PATCH take locale en or ro; another is a 400 naming the ones there are (CONTRACT section 9)."""
    relay = await start()
    created = await relay.create("/admin/agents", ANA_RO)
    assert created["locale"] == "ro"
    status, bo = await relay.admin("POST", "/admin/agents", BO_EN)
    assert status == 201 and bo["locale"] is None  # RELAY_DEFAULT_LOCALE
    status, refused = await relay.admin("PATCH", "/admin/agents/bo", {"locale": "fr"})
    assert status == 400 and refused["error"] == "bad_request"
    assert refused["detail"] == "locale: 'fr' is not a language the relay speaks; use one of en, ro."
    status, refused = await relay.admin("POST", "/admin/agents", {**BO_EN, "id": "cy", "locale": "fr"})
    assert status == 400 and "use one of en, ro" in refused["detail"]
    status, patched = await relay.admin("PATCH", "/admin/agents/bo", {"locale": "RO"})
    assert status == 200 and patched["locale"] == "ro"
    status, listed = await relay.admin("GET", "/admin/agents")
    assert status == 200 and {a["id"]: a["locale"] for a in listed["items"]} == {"ana": "ro", "bo": "ro"}


async def test_a_romanian_and_an_english_agent_in_one_circle_each_read_their_own(
    start: Start, capsys: pytest.CaptureFixture[str]
) -> None:
    """One panic.ui, two agents: the console prints Romanian for Ana and English for Bo, each with labels."""
    relay = await start(run_outbox=True)
    await relay.seed(GRANT, agents=[ANA_RO, BO_EN])
    await relay.send("m3", panic())
    await relay.drain()
    printed = capsys.readouterr().out
    assert "── invitație pentru Ana (consolă) ──" in printed
    assert "Raz a trimis un semnal blând: „Sunt aici. Nu e urgență. Aș vrea însoțire.”" in printed
    assert re.search(
        r"Răspunde [A-Z2-9]{4} 1 pentru Întreabă blând ce face, [A-Z2-9]{4} 2 pentru Stai alături\.", printed
    )
    assert "── invitation for Bo (console) ──" in printed
    assert re.search(r"Reply [A-Z2-9]{4} 1 for Check in gently, [A-Z2-9]{4} 2 for Hold space\.", printed)
    assert "Raz would welcome company within the next 30 minutes — no pressure." in printed


async def test_the_link_page_in_romanian_with_labels_the_time_sent_and_the_close_form_behind_a_disclosure(
    start: Start,
) -> None:
    """Ana (ro) reads her page in Romanian: labels on buttons, when it was sent, closing only behind "Am fost acolo"."""
    relay = await start(run_outbox=True)
    await relay.seed(GRANT, agents=[{**ANA_RO, "tz": "Europe/Bucharest"}])
    answer = await relay.send("m3", panic())
    invitation = await relay.invitation_id(answer["id"])
    response = await relay.get(relay.link(invitation))
    html = await response.text()
    assert response.status == 200 and '<html lang="ro">' in html
    assert "<h1>O invitație pentru Ana</h1>" in html
    buttons = re.findall(r'<button type="submit" name="response" value="([^"]+)">([^<]+)<', html)
    assert buttons == [("soft-checkin", "Întreabă blând ce face"), ("hold-space", "Stai alături")]
    assert re.search(r'id="sent-at">Trimis \w+ \d+ \w+ 20\d\d, \d\d:\d\d', html)
    assert '<details class="close">' in html and "Am fost acolo — marchează ca încheiat" in html
    assert "prefers-color-scheme: dark" in html and 'content="light dark"' in html

    status, html = await relay.press(relay.link(invitation), action="ack", response="hold-space")
    assert status == 200 and "Mulțumim, Ana — am notat: Stai alături" in html
    assert '<details class="close">' not in html and 'id="close-form"' in html  # answered: the form is open
    loop = await relay.loop(answer)
    assert [a["action"] for a in loop["acks"]] == ["hold-space"]  # the slug is what is recorded


async def test_after_the_window_the_page_says_reaching_out_is_still_welcome(start: Start, clock: Clock) -> None:
    """Past the care window the page says so kindly, still offers the answers, and opening it records nothing."""
    relay = await start(run_outbox=True)
    answer, invitation = await relay.invited()
    clock.fixed = time.time() + 31 * 60
    before = await relay.audit()
    html = await (await relay.get(relay.link(invitation))).text()
    assert "The window they hoped for has passed. Reaching out is still welcome, whenever you can." in html
    assert "would welcome company within" not in html
    assert 'name="response"' in html
    assert await relay.audit() == before and (await relay.loop(answer))["acks"] == []


async def test_the_status_page_shows_who_is_here_and_the_outcome_and_nothing_private(start: Start) -> None:
    """The status URL in a browser: invited, "Ana is here" with the label, then the outcome; no note or number."""
    relay = await start(run_outbox=True)
    await relay.seed(GRANT, agents=[{**ANA, "phone": "+40722123456"}])
    answer = await relay.send("m3", panic())
    invitation = await relay.invitation_id(answer["id"])

    async def page(url: str, **headers: str) -> str:
        response = await relay.get(url, headers={**HTML, **headers})
        assert response.status == 200 and response.content_type == "text/html"
        assert response.headers["Cache-Control"] == "no-store"
        return await response.text()

    html = await page(answer["status_url"])
    assert "Your circle was invited. Nobody has answered yet" in html and "Nobody has answered yet." in html
    await relay.press(relay.link(invitation), action="ack", response="soft-checkin")
    html = await page(answer["status_url"])
    assert "Ana is here — Check in gently" in html
    await relay.press(relay.link(invitation), action="done", outcome="held-space", note="We sat together; call 0722")
    html = await page(answer["status_url"])
    assert "Ana closed the loop — I held space" in html and "the loop is closed" in html
    # a typed outcome may quote a number: the page shows none, however it was written
    again = await relay.send("m3", panic())
    again_invitation = await relay.invitation_id(again["id"])
    typed = "rang +40722123456, then 0722 123 456"
    await relay.press(relay.link(again_invitation), action="done", outcome=typed, note="")
    rang = await page(again["status_url"])
    assert "Ana closed the loop — Rang …, then …" in rang
    for digits in ("+40", "722123456", "0722", "123 456"):
        assert digits not in rang, (digits, rang[rang.find(digits) - 80 : rang.find(digits) + 40])
    for private in ("We sat together", "0722", "+40", "722123456", "gates", "explicit consent", "console"):
        assert private not in html, private

    romanian = await page(answer["status_url"] + "&lang=ro")
    assert '<html lang="ro">' in romanian and "Ana e aici — Întreabă blând ce face" in romanian
    assert "Ana a încheiat — Am stat alături" in romanian
    browser_ro = await page(answer["status_url"], **{"Accept-Language": "ro-RO,ro;q=0.9,en;q=0.5"})
    assert "Cercul tău a fost invitat" in browser_ro


async def test_api_clients_still_get_the_status_json(start: Start) -> None:
    """Without text/html in Accept (none, */*, JSON) the status URL answers the contract's JSON as before."""
    relay = await start(run_outbox=True)
    answer, _ = await relay.invited()
    for headers in ({}, {"Accept": "*/*"}, {"Accept": "application/json"}):
        response = await relay.get(answer["status_url"], headers=headers)
        assert response.status == 200 and response.content_type == "application/json"
        body: dict[str, Any] = await response.json()
        assert body["id"] == answer["id"] and body["status"] == "invited" and "decision" in body
    response = await relay.get(f"/v1/events/{answer['id']}", headers={**HTML, **ADMIN})
    assert response.status == 200 and "Your signal" in await response.text()


async def test_a_signal_sent_at_the_end_of_the_calendar_still_opens_its_page(start: Start) -> None:
    """A sender's ts of 9999-12-31 with a window, for an agent in Tokyo: the page opens and takes the answer
    (no date sum overflows), and the time sent is shown in UTC when no zone can hold it."""
    relay = await start(run_outbox=True)
    await relay.seed(GRANT, agents=[{**ANA, "tz": "Asia/Tokyo"}])
    answer = await relay.send("m3", panic(ts="9999-12-31T23:59:00Z"))
    assert answer["status"] == "invited"
    invitation = await relay.invitation_id(answer["id"])
    response = await relay.get(relay.link(invitation))
    html = await response.text()
    assert response.status == 200 and "9999" in html
    status, _ = await relay.press(relay.link(invitation), action="ack", response="soft-checkin")
    assert status == 200


async def test_an_aisha_invitation_offers_its_care_window_and_the_page_says_when_it_passed(
    start: Start, clock: Clock, capsys: pytest.CaptureFixture[str]
) -> None:
    """AiSHA's window is AISHA_CARE_WINDOW_MINUTES: the invitation offers it, and past it the page says so kindly."""
    relay = await start(run_outbox=True, aisha_care_window_minutes=90)
    await relay.seed(AISHA_GRANT, agents=[ANA])
    answer = await relay.send("aisha", escalation())
    assert answer["status"] == "invited"
    await relay.drain()
    assert "A person would be welcome within the next 1 hour and 30 minutes — no pressure." in capsys.readouterr().out
    invitation = await relay.invitation_id(answer["id"])
    clock.fixed = time.time() + 91 * 60
    html = await (await relay.get(relay.link(invitation))).text()
    assert "The window they hoped for has passed. Reaching out is still welcome, whenever you can." in html


# A signal that joined an open loop (CONTRACT section 10) -----------------------------------


async def _invitations(relay: Any, event_id: str) -> dict[str, int]:
    """agent → invitation id, of the one signal with this event id."""
    rows = await relay.sql(
        "SELECT i.agent_id, i.id FROM invitation i JOIN signal s ON s.id = i.signal_id WHERE s.event_id = ?", event_id
    )
    return {str(agent): int(invitation) for agent, invitation in rows}


async def test_the_link_page_shows_a_signal_that_joined_the_open_loop_in_each_agents_language(start: Start) -> None:
    """Raz's second panic joins the open loop: Ana (ro) and Bo (en) each read "Raz sent another signal" on
    their page, the whisper quoted as sent, with when it came in their own zone; opening it records nothing."""
    relay = await start(run_outbox=True, relay_coalesce=True)
    await relay.seed(GRANT, agents=[{**ANA_RO, "tz": "Europe/Bucharest"}, {**BO_EN, "tz": "America/New_York"}])
    first = await relay.send("m3", panic())
    links = await _invitations(relay, first["id"])
    before = html.unescape(await (await relay.get(relay.link(links["bo"]))).text())
    assert 'id="joined"' not in before and "sent another signal" not in before

    second = await relay.send("m3", panic(intent={"whisper": "still here <3", "suggested_responses": ["soft-checkin"]}))
    assert second["status"] == "joined" and second["joined_to"] == first["id"]
    audit = await relay.audit()
    english = await relay.get(relay.link(links["bo"]))
    assert english.status == 200
    page = html.unescape(await english.text())
    assert 'Raz sent another signal: "still here <3"' in page
    assert re.search(r"Received \w+ \d+ \w+ 20\d\d, \d\d:\d\d (Eastern|GMT-0[45])", page), page
    assert 'name="response"' in page  # Bo can still answer the loop
    romanian = html.unescape(await (await relay.get(relay.link(links["ana"]))).text())
    assert "Raz a mai trimis un semnal: „still here <3”" in romanian
    assert re.search(r"Primit \w+ \d+ \w+ 20\d\d, \d\d:\d\d", romanian)
    assert await relay.audit() == audit  # a GET records nothing

    status, answered = await relay.press(relay.link(links["ana"]), action="ack", response="hold-space")
    assert status == 200 and "Raz a mai trimis un semnal: „still here &lt;3”" in answered  # escaped, still listed


async def test_the_status_page_of_a_joined_signal_shows_the_open_loops_people(start: Start) -> None:
    """Raz's second signal's page says it joined a moment already open, and shows who is there in that
    loop (Ana is here, then her outcome), never "nobody was invited" nor anything private; the JSON is as before."""
    relay = await start(run_outbox=True, relay_coalesce=True)
    await relay.seed(GRANT, agents=[{**ANA, "phone": "+40722123456"}])
    first = await relay.send("m3", panic())
    invitation = await relay.invitation_id(first["id"])
    second = await relay.send("m3", panic(intent={"whisper": "still here"}))
    assert second["status"] == "joined"

    async def page(url: str) -> str:
        response = await relay.get(url, headers=HTML)
        assert response.status == 200 and response.content_type == "text/html"
        return await response.text()

    waiting = await page(second["status_url"])
    assert "Your signal joined a moment that was already open" in waiting
    assert "Nobody was invited" not in waiting and "Nobody has answered yet." in waiting

    await relay.press(relay.link(invitation), action="ack", response="soft-checkin")
    here = await page(second["status_url"])
    assert "Your signal joined a moment that was already open" in here and "Ana is here — Check in gently" in here
    assert "Nobody was invited" not in here and "Nobody has answered yet" not in here
    romanian = await page(second["status_url"] + "&lang=ro")
    assert "Semnalul tău s-a alăturat unui moment deja deschis" in romanian
    assert "Ana e aici — Întreabă blând ce face" in romanian

    await relay.press(relay.link(invitation), action="done", outcome="held-space", note="We sat together; call 0722")
    closed = await page(second["status_url"])
    assert "Ana closed the loop — I held space" in closed and "the loop is closed" in closed
    for private in ("We sat together", "0722", "+40", "722123456", "gates", "consent", "console", first["id"]):
        assert private not in closed, private

    response = await relay.get(second["status_url"], headers={"Accept": "application/json"})
    body: dict[str, Any] = await response.json()
    assert body["status"] == "joined" and body["joined_to"] == first["id"]
    assert body["acks"] == [] and body["done"] is None and body["invitations"] == []
