"""The human paths an agent and an actor take (CONTRACT section 10): "not now", "ask someone
else", and the actor's own consent page; through HTTP, the fake Slack and the fake Twilio."""

from __future__ import annotations

import re
import time
from typing import Any

from tests.conftest import BOTH_DATABASES, Clock
from tests.driver import Relay, panic, signal
from tests.fakes.slack import FakeSlack, block_action, static_select, view_submission
from tests.fakes.twilio import FakeTwilio
from tests.relay.test_human_paths import (
    ANA,
    ANA_PHONE,
    ANA_SLACK,
    ANA_SMS,
    BOB,
    BOB_PHONE,
    BOB_SLACK,
    SECRET,
    Begin,
    text,
)

BOB_IN_SLACK = {
    "id": "bob",
    "display": "Bob",
    "groups": ["care-circle"],
    "slack_user": BOB_SLACK,
    "channels": ["slack"],
}
ZED = {"id": "zed", "display": "Zed"}


async def slack_post(relay: Relay, body: bytes, headers: dict[str, str]) -> Any:
    response = await relay.post("/slack/events", data=body, headers=headers)
    assert response.status == 200, await response.text()
    raw = await response.text()
    return await response.json() if raw else None


async def invitation_of(relay: Relay, event_id: str, agent: str) -> int:
    rows = await relay.sql(
        "SELECT i.id FROM invitation i JOIN signal s ON s.id = i.signal_id WHERE s.event_id = ? AND i.agent_id = ?",
        event_id,
        agent,
    )
    return int(rows[0][0])


def code_of(html: str) -> str | None:
    found = re.search(r'data-code="([a-z_]+)"', html)
    return found.group(1) if found else None


# Not now ---------------------------------------------------------------------------------


@BOTH_DATABASES
async def test_ana_passes_by_sms_and_bob_in_slack_sees_nothing_change(
    begin: Begin, slack: FakeSlack, twilio: FakeTwilio
) -> None:
    """PASS by SMS is kept and thanked; Bob's Slack message is not updated, no callback is queued,
    the loop's status does not move, and the status document lists the pass."""
    relay = await begin(ANA_SMS, BOB_IN_SLACK, m3_callback_url="https://m3.example/callbacks")
    answer = await relay.send("m3", panic())
    await relay.drain()
    assert len(twilio.messages) == 1 and len(slack.calls_to("chat.postMessage")) == 1

    (thanks,) = await text(relay, ANA_PHONE, "pass")
    assert thanks.startswith("Thank you, Ana — not now is fine")
    await relay.drain()
    assert slack.calls_to("chat.update") == []
    assert len(twilio.messages) == 1 and len(slack.calls_to("chat.postMessage")) == 1
    assert [row["kind"] for row in await relay.outbox()] == ["invite", "invite"]

    loop = await relay.loop(answer)
    assert loop["status"] == "invited" and loop["acks"] == []
    assert [p["by"] for p in loop["passes"]] == [{"id": "ana", "display": "Ana"}]
    row = next(a for a in await relay.audit() if a["kind"] == "pass")
    assert row["action_origin"] == "user_directed" and row["detail"]["user_instruction"] == "ana said not now"

    (again,) = await text(relay, ANA_PHONE, "PASS")
    assert again.startswith("Thank you, Ana")
    assert len((await relay.loop(answer))["passes"]) == 1


async def test_an_agent_who_acked_cannot_pass(begin: Begin) -> None:
    """After an ack the page's "Not now" is 409 already_answered and nothing is kept; by SMS, kind words."""
    relay = await begin(ANA_SMS, BOB)
    answer = await relay.send("m3", panic())
    ana = await invitation_of(relay, answer["id"], "ana")
    assert (await relay.press(relay.link(ana), action="ack", response="soft-checkin"))[0] == 200
    status, html = await relay.press(relay.link(ana), action="pass")
    assert (status, code_of(html)) == (409, "already_answered")
    assert 'id="pass-form"' not in html
    (words,) = await text(relay, ANA_PHONE, "PASS")
    assert "You already said you're here" in words
    loop = await relay.loop(answer)
    assert loop["passes"] == [] and loop["status"] == "acked"


async def test_pass_by_whatsapp_quick_reply_reads_the_payload(begin: Begin) -> None:
    """The grammar reads `PASS <CODE>` like any reply; an unknown code is refused kindly, nothing kept."""
    relay = await begin(ANA_SMS)
    answer = await relay.send("m3", panic())
    (refused,) = await text(relay, ANA_PHONE, "PASS ZZ99")
    assert "I don't have an open invitation ZZ99" in refused
    code = (await relay.sql("SELECT code FROM invitation"))[0][0]
    (thanks,) = await text(relay, ANA_PHONE, f"pass {code}")
    assert code in thanks and (await relay.loop(answer))["passes"][0]["by"]["id"] == "ana"


async def test_not_now_in_slack_is_thanked_and_changes_nothing_else(begin: Begin, slack: FakeSlack) -> None:
    """The "Not now" button: an ephemeral thanks for Ana; the loop and Bob's message stay as they were."""
    relay = await begin(ANA, BOB_IN_SLACK)
    answer = await relay.send("m3", panic())
    await relay.drain()
    sent = slack.calls_to("chat.postMessage")[0]
    actions = [e["action_id"] for b in sent["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert actions[-2:] == ["care_pass", "care_ask"]
    ana = await invitation_of(relay, answer["id"], "ana")
    await slack_post(relay, *block_action(SECRET, user_id=ANA_SLACK, action_id="care_pass", value=str(ana)))
    (said,) = slack.calls_to("chat.postEphemeral")
    assert said["text"].startswith("Thank you for saying so")
    await relay.drain()
    assert slack.calls_to("chat.update") == []
    assert (await relay.loop(answer))["status"] == "invited"


# Ask someone else ------------------------------------------------------------------------


@BOTH_DATABASES
async def test_ana_acks_and_asks_bob_in_slack(begin: Begin, slack: FakeSlack, twilio: FakeTwilio) -> None:
    """Ana (Slack) answers, then "Ask someone else" opens a modal naming Bob; its submission invites
    Bob by SMS as Ana's instruction, past the hourly limit, and the status document says who asked."""
    relay = await begin(ANA, BOB, relay_agent_max_invites_per_hour=1)
    await relay.send("m3", panic(audience={"groups": ["elsewhere"], "targets": ["user:bob"]}))  # Bob's one this hour
    answer = await relay.send("m3", panic(audience={"groups": ["care-circle"], "targets": []}, actor={"id": "raz"}))
    loop = await relay.loop(answer)
    assert {i["agent"]: i["status"] for i in loop["invitations"]} == {"ana": "queued", "bob": "skipped"}
    await relay.drain()
    ana = await invitation_of(relay, answer["id"], "ana")
    await slack_post(relay, *block_action(SECRET, user_id=ANA_SLACK, action_id="care_ack_1", value=f"{ana}:1"))

    await slack_post(relay, *block_action(SECRET, user_id=ANA_SLACK, action_id="care_ask", value=str(ana)))
    (opened,) = slack.calls_to("views.open")
    view = opened["view"]
    assert view["callback_id"] == "care_ask_modal" and view["private_metadata"] == str(ana)
    options = [o["value"] for b in view["blocks"] if b["type"] == "input" for o in b["element"]["options"]]
    assert options == ["bob"]

    texts_before = len(twilio.messages)
    body, headers = view_submission(
        SECRET, user_id=ANA_SLACK, callback_id="care_ask_modal", private_metadata=str(ana),
        values={"ask_agent": static_select("bob", "Bob")},
    )  # fmt: skip
    closed = await slack_post(relay, body, headers)
    assert closed["response_action"] == "update"
    assert "Bob is invited" in str(closed["view"]["blocks"])
    await relay.drain()
    assert [m["To"] for m in twilio.messages[texts_before:]] == [BOB_PHONE]

    loop = await relay.loop(answer)
    bob = next(i for i in loop["invitations"] if i["agent"] == "bob")
    assert bob["invited_by"] == "agent:ana" and loop["status"] == "acked"
    row = next(a for a in await relay.audit() if a["kind"] == "ask_someone_else")
    assert row["action_origin"] == "user_directed" and row["detail"]["user_instruction"] == "ana asked bob"

    # Bob holds one now: asking again changes nothing, and nobody is left to ask
    closed = await slack_post(relay, body, headers)
    assert "Bob already has an invitation" in str(closed["view"]["blocks"])
    await slack_post(relay, *block_action(SECRET, user_id=ANA_SLACK, action_id="care_ask", value=str(ana)))
    assert "nobody else" in slack.calls_to("chat.postEphemeral")[-1]["text"]


async def test_the_link_page_offers_not_now_and_ask_someone_else(begin: Begin, twilio: FakeTwilio) -> None:
    """The page's "Not now" and "Ask someone else" forms: a pass is thanked, an ask invites Bob;
    a stranger's name is a 400 that invites nobody."""
    relay = await begin(ANA_SMS, BOB, relay_agent_max_invites_per_hour=0)
    answer = await relay.send("m3", panic())
    assert answer["status"] == "unroutable"
    await relay.admin("POST", f"/admin/events/{answer['id']}/invite", {"agents": ["ana"], "by": "lead"})
    ana = await invitation_of(relay, answer["id"], "ana")
    page = await relay.get(relay.link(ana))
    html = await page.text()
    assert 'id="pass-form"' in html and 'id="ask-form"' in html and '<option value="bob">Bob</option>' in html

    status, html = await relay.press(relay.link(ana), action="ask", agent="nobody")
    assert status == 400 and code_of(html) == "bad_request"
    status, html = await relay.press(relay.link(ana), action="ask", agent="bob")
    assert status == 200 and "Bob is invited" in html and 'id="ask-form"' not in html
    status, html = await relay.press(relay.link(ana), action="pass")
    assert status == 200 and "not now is fine" in html and 'id="pass-form"' not in html

    loop = await relay.loop(answer)
    assert {i["agent"]: i.get("invited_by") for i in loop["invitations"]} == {"ana": "admin:lead", "bob": "agent:ana"}
    assert [p["by"]["id"] for p in loop["passes"]] == ["ana"] and loop["status"] == "invited"
    await relay.drain()
    assert sorted(m["To"] for m in twilio.messages) == sorted([ANA_PHONE, BOB_PHONE])


# The actor's own consent -----------------------------------------------------------------


@BOTH_DATABASES
async def test_zeds_consent_page_invites_the_circle_and_later_stops(
    begin: Begin, twilio: FakeTwilio, clock: Clock
) -> None:
    """A pending_consent signal carries consent_url, the same link in its 202 and in a later status
    read; its GET changes nothing; yes grants and decides the signal again (invited, user_directed);
    "Stop inviting my circle" stops the next one while an admin's grant stays."""
    clock.fixed = time.time()
    relay = await begin(BOB)
    admin_grant = {"subject": "actor:zed", "scope": ["status.set"], "groups": ["care-circle"], "by": "lead"}
    assert (await relay.admin("POST", "/admin/consents", admin_grant))[0] == 201
    pending = await relay.send("m3", panic(actor=ZED))
    assert pending["status"] == "pending_consent" and pending["consent_url"].startswith("/c/")
    clock.fixed += 1.5  # a read in a later second shows the same link
    assert (await relay.loop(pending))["consent_url"] == pending["consent_url"]

    page = await relay.get(pending["consent_url"], headers={"Accept-Language": "ro"})
    assert page.status == 200 and "Vrei ca cercul tău de grijă să fie invitat" in await page.text()
    english = await (await relay.get(pending["consent_url"] + "?lang=en")).text()
    assert "Would you like your care-circle to be invited when you send a signal?" in english
    assert (await relay.loop(pending))["status"] == "pending_consent"

    status, html = await relay.press(pending["consent_url"], action="yes")
    assert status == 200 and "Your circle was invited" in html and 'id="stop-form"' in html
    loop = await relay.loop(pending)
    assert loop["status"] == "invited" and "consent_url" not in loop
    assert loop["invitations"] == [{"agent": "bob", "channel": "sms", "status": "queued", "invited_by": "actor:zed"}]
    assert loop["decision"]["action_origin"] == "user_directed"
    await relay.drain()
    assert [m["To"] for m in twilio.messages] == [BOB_PHONE]
    row = next(a for a in await relay.audit() if a["kind"] == "actor_consent")
    assert row["action_origin"] == "user_directed" and row["detail"]["by"] == "actor:zed"

    status, grants = await relay.admin("GET", "/admin/consents")
    mine = [g for g in grants["items"] if g["by"] == "actor:zed"]
    assert [(g["subject"], g["scope"], g["groups"]) for g in mine] == [("actor:zed", ["panic.ui"], ["care-circle"])]

    status, html = await relay.press(pending["consent_url"], action="stop")
    assert status == 200 and "will not be invited" in html and 'id="yes-form"' in html
    later = await relay.send("m3", panic(actor=ZED))
    assert later["status"] == "pending_consent"
    _, grants = await relay.admin("GET", "/admin/consents")
    by_who = {g["by"]: g["revoked_at"] for g in grants["items"] if g["subject"] == "actor:zed"}
    assert by_who["lead"] is None and by_who["actor:zed"] is not None


@BOTH_DATABASES
async def test_a_consent_link_lasts_as_long_as_an_action_link_from_its_signal(begin: Begin, clock: Clock) -> None:
    """The consent page opens until RELAY_LINK_MAX_AGE_SEC after its signal arrived; after that
    it answers 410, records nothing, and the status document no longer offers the link."""
    clock.fixed = time.time()
    relay = await begin(BOB, relay_link_max_age_sec=3600)
    pending = await relay.send("m3", panic(actor=ZED))
    url = pending["consent_url"]
    clock.fixed += 3600
    assert (await relay.loop(pending))["consent_url"] == url
    assert (await relay.get(url)).status == 200
    clock.fixed += 1
    assert "consent_url" not in await relay.loop(pending)
    assert (await relay.get(url)).status == 410
    status, _ = await relay.press(url, action="yes")
    assert status == 410
    loop = await relay.loop(pending)
    assert loop["status"] == "pending_consent" and loop["invitations"] == []
    assert await zeds_grants(relay) == []


def status_set(**changes: Any) -> dict[str, Any]:
    """A golden status.set as a new event."""
    return signal("m3", "status.set__golden", **changes)


async def zeds_grants(relay: Relay) -> list[tuple[list[str], list[str], bool]]:
    """The grants Zed made: (scope, groups, revoked), oldest first."""
    _, grants = await relay.admin("GET", "/admin/consents")
    return [(g["scope"], g["groups"], g["revoked_at"] is not None) for g in grants["items"] if g["by"] == "actor:zed"]


@BOTH_DATABASES
async def test_a_yes_on_a_panic_page_does_not_answer_for_a_later_status(begin: Begin, twilio: FakeTwilio) -> None:
    """Zed's yes on a panic.ui page covers panic.ui only: a later status.set's page asks again, and
    its yes grants status.set and invites, the first grant kept; both pages then say yes before,
    and "Stop inviting my circle" revokes both while an admin's grant stays."""
    relay = await begin(BOB)
    admin_grant = {"subject": "actor:zed", "scope": ["care.state_applied"], "groups": ["care-circle"], "by": "lead"}
    assert (await relay.admin("POST", "/admin/consents", admin_grant))[0] == 201
    first = await relay.send("m3", panic(actor=ZED))
    status, html = await relay.press(first["consent_url"], action="yes")
    assert status == 200 and "Your circle was invited" in html

    later = await relay.send("m3", status_set(actor=ZED))
    assert later["status"] == "pending_consent" and later["consent_url"] != first["consent_url"]
    page = await (await relay.get(later["consent_url"] + "?lang=en")).text()
    assert "Would you like your care-circle to be invited when you send a signal?" in page
    assert "this one is not covered yet" in page and "You said yes before. You can stop" not in page
    assert 'id="yes-form"' in page and 'id="stop-form"' in page
    romanian = await (await relay.get(later["consent_url"], headers={"Accept-Language": "ro"})).text()
    assert "acesta nu este încă inclus" in romanian
    assert (await relay.loop(later))["status"] == "pending_consent"

    status, html = await relay.press(later["consent_url"], action="yes")
    assert status == 200 and "Your circle was invited for the signal you just sent." in html
    loop = await relay.loop(later)
    assert loop["status"] == "invited" and loop["decision"]["action_origin"] == "user_directed"
    assert loop["invitations"] == [{"agent": "bob", "channel": "sms", "status": "queued", "invited_by": "actor:zed"}]
    await relay.drain()
    assert [m["To"] for m in twilio.messages] == [BOB_PHONE, BOB_PHONE]
    assert await zeds_grants(relay) == [
        (["panic.ui"], ["care-circle"], False),
        (["status.set"], ["care-circle"], False),
    ]
    for url in (first["consent_url"], later["consent_url"]):
        page = await (await relay.get(url + "?lang=en")).text()
        assert "You said yes before. You can stop it here at any time." in page
        assert 'id="yes-form"' not in page and 'id="stop-form"' in page

    status, html = await relay.press(later["consent_url"], action="stop")
    assert status == 200 and "will not be invited" in html and 'id="yes-form"' in html
    assert [revoked for *_, revoked in await zeds_grants(relay)] == [True, True]
    _, grants = await relay.admin("GET", "/admin/consents")
    assert [g["revoked_at"] for g in grants["items"] if g["by"] == "lead"] == [None]
    assert (await relay.send("m3", panic(actor=ZED)))["status"] == "pending_consent"
    assert (await relay.send("m3", status_set(actor=ZED)))["status"] == "pending_consent"


@BOTH_DATABASES
async def test_zeds_yes_joins_the_open_loop_about_zed(begin: Begin, slack: FakeSlack, twilio: FakeTwilio) -> None:
    """With coalescing on, a yes that would invite while a loop about Zed is open joins it: status
    `joined` with `joined_to`, nobody invited again, the open loop's Slack message shows it."""
    relay = await begin(BOB_IN_SLACK, relay_coalesce=True)
    admin_grant = {"subject": "actor:zed", "scope": ["panic.ui"], "groups": ["care-circle"], "by": "lead"}
    assert (await relay.admin("POST", "/admin/consents", admin_grant))[0] == 201
    first = await relay.send("m3", panic(actor=ZED))
    assert first["status"] == "invited"
    await relay.drain()
    assert len(slack.calls_to("chat.postMessage")) == 1

    later = await relay.send("m3", status_set(actor=ZED))
    assert later["status"] == "pending_consent"
    status, html = await relay.press(later["consent_url"], action="yes")
    assert status == 200 and "Your circle already has your earlier signal open" in html
    loop = await relay.loop(later)
    assert loop["status"] == "joined" and loop["joined_to"] == first["id"] and loop["invitations"] == []
    opened = await relay.loop(first)
    assert opened["status"] == "invited" and [(j["id"], j["type"]) for j in opened["joined"]] == [
        (later["id"], "status.set")
    ]
    row = next(a for a in await relay.audit() if a["kind"] == "actor_consent")
    assert row["action_origin"] == "user_directed" and row["detail"]["joined_to"] == first["id"]
    assert row["detail"]["invited"] == []
    await relay.drain()
    (update,) = slack.calls_to("chat.update")
    assert "Zed sent another signal" in str(update["blocks"])
    assert len(slack.calls_to("chat.postMessage")) == 1 and twilio.messages == []
    assert await zeds_grants(relay) == [(["status.set"], ["care-circle"], False)]

    status, html = await relay.press(later["consent_url"], action="yes")  # a second press: nothing more
    assert status == 200 and (await relay.loop(later))["status"] == "joined"
    assert len(await zeds_grants(relay)) == 1


async def test_consent_links_refuse_what_they_should(begin: Begin) -> None:
    """No consent_url for a circle the directory does not know; a tampered token is 403; a bad action 400."""
    relay = await begin(BOB)
    elsewhere = await relay.send("m3", panic(actor=ZED, audience={"groups": ["nobody-here"], "targets": []}))
    assert elsewhere["status"] == "pending_consent" and "consent_url" not in elsewhere
    pending = await relay.send("m3", panic(actor=ZED))
    assert (await relay.get(pending["consent_url"] + "x")).status == 403
    status, html = await relay.press(pending["consent_url"], action="maybe")
    assert status == 400 and code_of(html) == "bad_request"
    assert (await relay.loop(pending))["status"] == "pending_consent"
