"""The human paths around a loop (CONTRACT section 10): away and back, one loop per moment,
invite now, each audited; through HTTP, the fake Slack and the fake Twilio."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable
from typing import Any

from tests.conftest import BOTH_DATABASES
from tests.driver import ADMIN, Relay, panic
from tests.fakes.slack import FakeSlack, slash_command
from tests.fakes.twilio import DEFAULT_AUTH_TOKEN, FakeTwilio, inbound_sms

SECRET = "slack-signing-secret-for-tests"
PUBLIC = "https://relay.example"
SMS_FROM = "+15005550006"
ANA_SLACK, BOB_SLACK = "U0ANA", "U0BOB"
ANA_PHONE, BOB_PHONE = "+40722000111", "+40722000333"
ANA = {"id": "ana", "display": "Ana", "groups": ["care-circle"], "slack_user": ANA_SLACK, "channels": ["slack"]}
BOB = {"id": "bob", "display": "Bob", "groups": ["care-circle"], "phone": BOB_PHONE, "channels": ["sms"]}
#: Ana by SMS only (the away-by-SMS test)
ANA_SMS = {"id": "ana", "display": "Ana", "groups": ["care-circle"], "phone": ANA_PHONE, "channels": ["sms"]}
CY = {"id": "cy", "display": "Cy", "groups": ["elsewhere"], "slack_user": "U0CY", "channels": ["slack"]}
GRANT = {"subject": "actor:raz", "scope": ["panic.ui"], "groups": ["care-circle"], "by": "admin"}

Begin = Callable[..., Awaitable[Relay]]


async def text(relay: Relay, number: str, body: str) -> list[str]:
    """Twilio posting an SMS from `number`, signed for the public URL; the TwiML messages of the answer."""
    form, headers = inbound_sms(
        DEFAULT_AUTH_TOKEN, f"{PUBLIC}/hooks/twilio/inbound", from_=number, to=SMS_FROM, body=body
    )
    response = await relay.post("/hooks/twilio/inbound", data=form, headers=headers)
    assert response.status == 200, await response.text()
    root = ET.fromstring(await response.text())  # noqa: S314 - the relay's own TwiML answer
    return [m.text or "" for m in root.iter("Message")]


async def care(relay: Relay, user: str, words: str = "") -> str:
    """`/care <words>` from a Slack user; the ephemeral answer."""
    body, headers = slash_command(SECRET, user_id=user, text=words)
    response = await relay.post("/slack/events", data=body, headers=headers)
    assert response.status == 200, await response.text()
    answer = await response.json()
    assert answer["response_type"] == "ephemeral"
    return str(answer["text"])


def invited(loop: dict[str, Any]) -> dict[str, str]:
    """agent → invitation status, of a status document."""
    return {i["agent"]: i["status"] for i in loop["invitations"]}


# Away and back ---------------------------------------------------------------------------


@BOTH_DATABASES
async def test_an_away_agent_is_skipped_until_back_by_sms(begin: Begin, twilio: FakeTwilio) -> None:
    """AWAY by SMS: routing passes Ana over (skipped `away`) and nobody is texted; BACK: invited again."""
    relay = await begin(ANA_SMS)
    (answer,) = await text(relay, ANA_PHONE, "away")
    assert answer.startswith("Rest well, Ana") and "BACK" in answer
    assert (await relay.admin("GET", "/admin/agents/ana"))[1]["away"] is True

    away = await relay.send("m3", panic())
    assert away["status"] == "unroutable"
    assert invited(await relay.loop(away)) == {"ana": "skipped"}
    await relay.drain()
    assert twilio.messages == []

    (answer,) = await text(relay, ANA_PHONE, "BACK")
    assert answer.startswith("Welcome back, Ana")
    back = await relay.send("m3", panic())
    assert back["status"] == "invited"
    await relay.drain()
    assert [m["To"] for m in twilio.messages] == [ANA_PHONE]

    kinds = [(a["kind"], a["action_origin"], a["detail"].get("user_instruction")) for a in await relay.audit()]
    assert ("agent_away", "user_directed", "ana said AWAY by sms") in kinds
    assert ("agent_back", "user_directed", "ana said BACK by sms") in kinds


async def test_away_set_after_queueing_is_refused_at_send_time(begin: Begin, twilio: FakeTwilio) -> None:
    """An invitation queued before Ana said AWAY is skipped `away` when its turn comes, never sent."""
    relay = await begin(ANA_SMS)
    answer = await relay.send("m3", panic())
    await text(relay, ANA_PHONE, "AWAY")
    await relay.drain()
    assert twilio.messages == []
    assert (await relay.outbox())[0]["last_error"] == "away"
    assert invited(await relay.loop(answer)) == {"ana": "skipped"}


async def test_care_away_and_back_in_slack(begin: Begin, slack: FakeSlack) -> None:
    """`/care away` sets Ana away (her JSON and routing say so); `/care back` undoes it; plain `/care` still lists."""
    relay = await begin(ANA)
    assert "until you say /care back" in await care(relay, ANA_SLACK, "away")
    assert (await relay.admin("GET", "/admin/agents/ana"))[1]["away"] is True
    assert (await relay.send("m3", panic()))["status"] == "unroutable"
    assert await care(relay, ANA_SLACK) == "Nothing is waiting for you right now."
    assert "Welcome back" in await care(relay, ANA_SLACK, " Back ")
    assert (await relay.send("m3", panic()))["status"] == "invited"
    await relay.drain()
    assert len(slack.calls_to("chat.postMessage")) == 1
    instructions = [a["detail"].get("user_instruction") for a in await relay.audit() if a["kind"].startswith("agent_")]
    assert instructions == ["ana said /care back in slack", "ana said /care away in slack"]


async def test_away_by_admin_patch_is_audited_with_who(begin: Begin) -> None:
    """PATCH `away` (with `?by=`) sets and clears it, audited as that person's instruction; null is refused."""
    relay = await begin(ANA)
    response = await relay.patch("/admin/agents/ana?by=lead", json={"away": True}, headers=ADMIN)
    assert response.status == 200 and (await response.json())["away"] is True
    assert (await relay.admin("PATCH", "/admin/agents/ana", {"away": None}))[0] == 422
    assert (await relay.admin("PATCH", "/admin/agents/ana", {"away": False}))[1]["away"] is False
    rows = [(a["kind"], a["detail"]["user_instruction"]) for a in await relay.audit() if a["kind"].startswith("agent_")]
    assert rows == [("agent_back", "admin set ana back"), ("agent_away", "lead set ana away")]


# One loop per moment ---------------------------------------------------------------------


@BOTH_DATABASES
async def test_a_second_panic_joins_the_open_loop(begin: Begin, slack: FakeSlack, twilio: FakeTwilio) -> None:
    """A second panic.ui from Raz while Ana's loop is open is `joined`: nobody new is invited, Ana's
    Slack message shows it, Bob gets no second SMS, and both status documents say so."""
    relay = await begin(ANA, BOB, relay_coalesce=True)
    first = await relay.send("m3", panic())
    assert first["status"] == "invited" and "joined_to" not in first
    await relay.drain()
    assert len(slack.calls_to("chat.postMessage")) == 1 and len(twilio.messages) == 1

    second = await relay.send("m3", panic(intent={"whisper": "still here", "suggested_responses": ["soft-checkin"]}))
    assert second["status"] == "joined" and second["joined_to"] == first["id"]
    await relay.drain()
    (update,) = slack.calls_to("chat.update")
    assert 'Raz sent another signal: "still here"' in str(update["blocks"])
    actions = [e["action_id"] for b in update["blocks"] if b["type"] == "actions" for e in b["elements"]]
    # nobody answered yet: Ana can still answer
    assert actions == ["care_ack_1", "care_ack_2", "care_done", "care_pass", "care_ask"]
    assert len(twilio.messages) == 1  # Bob is not texted again
    assert len(slack.calls_to("chat.postMessage")) == 1

    loop = await relay.loop(first)
    assert [(j["id"], j["type"]) for j in loop["joined"]] == [(second["id"], "panic.ui")]
    joined = await relay.loop(second)
    assert joined["status"] == "joined" and joined["joined_to"] == first["id"] and joined["invitations"] == []
    decision = next(a for a in await relay.audit() if a["event_id"] == second["id"])
    assert decision["action_origin"] == "care_autonomous" and decision["detail"]["joined_to"] == first["id"]
    # a joined signal never becomes a second open loop, not even by a person's invite now
    status, refused = await relay.admin(
        "POST", f"/admin/events/{second['id']}/invite", {"agents": ["ana"], "by": "lead"}
    )
    assert (status, refused["error"]) == (400, "bad_request") and "joined the loop already open" in refused["detail"]
    assert (await relay.loop(second))["status"] == "joined"

    ana = next(i for i, agent in await relay.sql(
        "SELECT i.id, i.agent_id FROM invitation i JOIN signal s ON s.id = i.signal_id WHERE s.event_id = ?", first["id"]
    ) if agent == "ana")  # fmt: skip
    assert (await relay.press(relay.link(ana), action="ack", response="soft-checkin"))[0] == 200
    third = await relay.send("m3", panic())
    assert third["status"] == "joined" and third["joined_to"] == first["id"]  # acked is still open
    await relay.drain()
    last = slack.calls_to("chat.update")[-1]
    notes = [e["text"] for b in last["blocks"] if b["type"] == "context" for e in b["elements"]]
    assert notes[0] == "Ana is here — Check in gently" and notes[1:] == [
        'Raz sent another signal: "still here"',
        'Raz sent another signal: "Sunt aici. Nu e urgență. Aș vrea însoțire."',
    ]
    assert len(twilio.messages) == 1


async def test_joining_ends_with_the_loop_and_respects_the_gates(begin: Begin) -> None:
    """A signal that would not invite keeps its own status; once the loop is done, the next one opens a loop."""
    relay = await begin(ANA, relay_coalesce=True)
    first = await relay.send("m3", panic())
    no_consent = panic()
    no_consent["consent"]["mode"] = "implicit"
    assert (await relay.send("m3", no_consent))["status"] == "pending_consent"
    other_actor = panic(actor={"id": "zed", "display": "Zed"})
    assert (await relay.send("m3", other_actor))["status"] == "pending_consent"  # no grant for Zed
    assert (await relay.send("m3", panic()))["status"] == "joined"
    invitation = await relay.invitation_id(first["id"])
    status, _ = await relay.press(relay.link(invitation), action="done", outcome="held-space", note="")
    assert status == 200
    assert (await relay.send("m3", panic()))["status"] == "invited"


async def test_coalescing_off_invites_each_signal(begin: Begin) -> None:
    """RELAY_COALESCE=false: each signal its own loop."""
    relay = await begin(ANA, relay_coalesce=False)
    assert [(await relay.send("m3", panic()))["status"] for _ in range(2)] == ["invited", "invited"]


async def test_two_signals_in_one_commit_group_make_one_loop(begin: Begin) -> None:
    """Two panics about Raz arriving together (one writer group on SQLite) still make one open loop."""
    import asyncio

    relay = await begin(ANA, relay_coalesce=True)
    answers = await asyncio.gather(*(relay.send("m3", panic()) for _ in range(6)))
    statuses = sorted(a["status"] for a in answers)
    assert statuses == ["invited", *["joined"] * 5]
    (opened,) = [a for a in answers if a["status"] == "invited"]
    assert {a["joined_to"] for a in answers if a["status"] == "joined"} == {opened["id"]}


# Invite now ------------------------------------------------------------------------------


@BOTH_DATABASES
async def test_admin_invites_bob_for_an_unroutable_loop(begin: Begin, twilio: FakeTwilio) -> None:
    """Invite now: an `unroutable` loop (everyone past the hourly limit) becomes `invited` with Bob's
    SMS, shown as asked by the admin and audited as their instruction; a loop without consent is 409."""
    relay = await begin(BOB, relay_agent_max_invites_per_hour=0, relay_sending_enabled=False)
    unroutable = await relay.send("m3", panic())
    assert unroutable["status"] == "paused"  # the kill switch is off too: invite now is a person's instruction
    status, answer = await relay.admin(
        "POST", f"/admin/events/{unroutable['id']}/invite", {"agents": ["bob"], "by": "lead"}
    )
    assert status == 202, answer
    assert answer == {
        "id": unroutable["id"], "source": "m3", "status": "invited",
        "invited": [{"agent": "bob", "channel": "sms"}], "already_invited": [], "by": "admin:lead",
    }  # fmt: skip
    loop = await relay.loop(unroutable)
    assert loop["status"] == "invited"
    assert loop["invitations"] == [{"agent": "bob", "channel": "sms", "status": "queued", "invited_by": "admin:lead"}]
    await relay.drain()
    assert [m["To"] for m in twilio.messages] == [BOB_PHONE]

    again = await relay.admin("POST", f"/admin/events/{unroutable['id']}/invite", {"agents": ["bob"], "by": "lead"})
    assert again[0] == 202 and again[1]["invited"] == [] and again[1]["already_invited"] == ["bob"]

    no_consent = await relay.send("m3", panic(actor={"id": "zed", "display": "Zed"}))
    status, refused = await relay.admin(
        "POST", f"/admin/events/{no_consent['id']}/invite", {"agents": ["bob"], "by": "lead"}
    )
    assert (status, refused["error"]) == (409, "consent_required")
    assert (await relay.loop(no_consent))["invitations"] == []

    noop, row = [a for a in await relay.audit() if a["kind"] == "invite_now"]  # newest first; no row for the 409
    assert row["action_origin"] == "user_directed" and row["event_id"] == unroutable["id"]
    assert row["detail"]["user_instruction"] == "lead invited bob" and row["detail"]["by"] == "admin:lead"
    assert row["detail"]["invited"] == [["bob", "sms"]] and noop["detail"]["already_invited"] == ["bob"]


async def test_invite_now_refuses_what_consent_and_the_directory_refuse(begin: Begin) -> None:
    """400 for an agent outside the granted groups, unknown, or away (naming why, inviting nobody);
    404 for an unknown event; 409 already_done for a closed loop; 422 for a malformed body."""
    relay = await begin(ANA, CY, relay_agent_max_invites_per_hour=0)
    answer = await relay.send("m3", panic())
    path = f"/admin/events/{answer['id']}/invite"
    status, refused = await relay.admin("POST", path, {"agents": ["cy", "nobody"], "by": "lead"})
    assert status == 400 and "'cy' is outside the groups" in refused["detail"]
    assert "'nobody' is not in the directory" in refused["detail"]
    await relay.admin("PATCH", "/admin/agents/ana", {"away": True})
    status, refused = await relay.admin("POST", path, {"agents": ["ana"], "by": "lead"})
    assert status == 400 and "'ana' is away" in refused["detail"]
    assert (await relay.loop(answer))["status"] == "unroutable"
    assert (await relay.admin("POST", "/admin/events/evt_nope/invite", {"agents": ["ana"], "by": "x"}))[0] == 404
    assert (await relay.admin("POST", path, {"agents": [], "by": "lead"}))[0] == 422
    assert (await relay.admin("POST", path, {"agents": ["ana"]}))[0] == 422

    await relay.admin("PATCH", "/admin/agents/ana", {"away": False})
    assert (await relay.admin("POST", path, {"agents": ["ana"], "by": "lead"}))[0] == 202
    invitation = await relay.invitation_id(answer["id"])
    await relay.press(relay.link(invitation), action="done", outcome="held-space", note="")
    status, refused = await relay.admin("POST", path, {"agents": ["ana"], "by": "lead"})
    assert (status, refused["error"]) == (409, "already_done")
