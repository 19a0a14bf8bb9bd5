"""Channels outside the lab (CONTRACT section 8), end to end through the real app and the real SDKs.

WhatsApp's 24-hour session as the relay keeps it (the agent's last message in, on the
app's driven clock), templates outside it, an invitation WhatsApp cannot deliver moved to
the agent's next channel for the same signal, Twilio's "not a valid / not a mobile
number" turning an address unconfirmed, and Slack's Join button.
"""

from __future__ import annotations

import html
import json
import re
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from relay.app import create_app
from relay.keys import OUTBOX, WRITER
from tests.conftest import BOTH_DATABASES
from tests.fakes.slack import DEFAULT_TOKEN, FakeSlack, app_home_opened, block_action, event_request, slash_command
from tests.fakes.twilio import FakeTwilio, status_callback
from tests.support import ADMIN_TOKEN, fixture, fresh, make_settings, metric, signed

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
PUBLIC = "https://relay.example"
INBOUND = f"{PUBLIC}/hooks/twilio/inbound"
STATUS = f"{PUBLIC}/hooks/twilio/status"
SMS_FROM = "+15005550006"
WA_FROM = "+14155238886"
TEMPLATE = "HX" + "fedcba9876543210" * 2
ANA_PHONE = "+40722000111"
ANA_WA = "+40722000222"
SECRET = "slack-signing-secret-for-tests"
HOUR = 3600.0


class Clock:
    """The relay's clock, driven by the test."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def fake() -> AsyncIterator[FakeTwilio]:
    async with FakeTwilio(enforce_whatsapp_sessions=True) as server:
        yield server


async def relay(
    aiohttp_client: Any, database_url: str, fake: FakeTwilio, clock: Clock, channels: list[str], **overrides: Any
) -> TestClient:
    settings = make_settings(
        database_url,
        twilio_account_sid=fake.account_sid,
        twilio_auth_token=fake.auth_token,
        twilio_sms_from=SMS_FROM,
        twilio_whatsapp_from=WA_FROM,
        twilio_api_base_url=fake.base_url,
        relay_public_base_url=PUBLIC,
        **overrides,
    )
    client: TestClient = await aiohttp_client(create_app(settings, clock=clock, run_outbox=False))
    ana = {"id": "ana", "display": "Ana", "groups": ["care-circle"], "phone": ANA_PHONE, "whatsapp": ANA_WA}
    assert (await client.post("/admin/agents", json=ana | {"channels": channels}, headers=ADMIN)).status == 201
    grant = {"subject": "actor:raz", "scope": ["panic.ui"], "groups": ["care-circle"], "by": "admin"}
    assert (await client.post("/admin/consents", json=grant, headers=ADMIN)).status == 201
    return client


async def emit(client: TestClient, clock: Clock) -> dict[str, Any]:
    """A fresh panic.ui from Raz, sent now by the relay's clock, accepted."""
    at = datetime.fromtimestamp(clock.now, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    payload = fresh("m3", fixture("m3", "panic.ui__golden"), ts=at)
    body, headers = signed("m3", payload, ts=int(clock.now))
    response = await client.post("/hooks/m3", data=body, headers=headers)
    assert response.status == 202, await response.text()
    answer: dict[str, Any] = await response.json()
    return answer


async def write_in(client: TestClient, fake: FakeTwilio, text: str = "MENU") -> None:
    """Ana writes on WhatsApp (Twilio posts it, signed): her 24-hour session opens."""
    form, headers = fake.inbound(INBOUND, from_=ANA_WA, to=WA_FROM, body=text, whatsapp=True)
    assert (await client.post("/hooks/twilio/inbound", data=form, headers=headers)).status == 200


async def loop_of(client: TestClient, answer: dict[str, Any]) -> dict[str, Any]:
    loop: dict[str, Any] = await (await client.get(answer["status_url"])).json()
    return loop


async def audit(client: TestClient) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = (await (await client.get("/admin/audit?limit=200", headers=ADMIN)).json())["items"]
    return items


@BOTH_DATABASES
async def test_inside_the_session_text_outside_it_the_template(
    aiohttp_client: Any, database_url: str, fake: FakeTwilio
) -> None:
    """Ana's message opens her session for 24 hours of the relay's clock: text then, the template after."""
    clock = Clock()
    client = await relay(aiohttp_client, database_url, fake, clock, ["whatsapp"], twilio_whatsapp_content_sid=TEMPLATE)
    await write_in(client, fake)
    await emit(client, clock)
    await client.app[OUTBOX].drain()
    [text] = fake.messages
    assert "Raz sent a gentle signal" in text["Body"] and text["ContentSid"] is None

    clock.now += 24 * HOUR + 1  # the session is over, however the fake sees it
    fake.close_session(ANA_WA)
    answer = await emit(client, clock)
    await client.app[OUTBOX].drain()
    [_, template] = fake.messages
    assert template["ContentSid"] == TEMPLATE and template["Body"] is None
    variables = json.loads(template["ContentVariables"])
    assert set(variables) == {"1", "2", "3", "4"}
    assert variables["1"] == "Raz" and variables["4"].startswith(f"{PUBLIC}/a/")
    assert (await loop_of(client, answer))["invitations"] == [{"agent": "ana", "channel": "whatsapp", "status": "sent"}]


@BOTH_DATABASES
async def test_outside_the_session_without_a_template_the_agent_is_invited_on_their_next_channel(
    aiohttp_client: Any, database_url: str, fake: FakeTwilio
) -> None:
    clock = Clock()
    client = await relay(aiohttp_client, database_url, fake, clock, ["whatsapp", "sms"])
    answer = await emit(client, clock)
    await client.app[OUTBOX].drain()
    [sms] = fake.messages  # nothing went to WhatsApp: no free-form message outside the session
    assert sms["To"] == ANA_PHONE and "Raz sent a gentle signal" in sms["Body"]
    assert (await loop_of(client, answer))["invitations"] == [{"agent": "ana", "channel": "sms", "status": "sent"}]
    [moved] = [e for e in await audit(client) if e["kind"] == "invitation_moved"]
    assert moved["detail"] == {"from": "whatsapp", "to": "sms"} and "outside_session" in moved["reason"]
    outbox = await (await client.get("/admin/outbox?status=failed", headers=ADMIN)).json()
    assert outbox["items"] == []  # the WhatsApp attempt is not a failure to redo: the invitation went on
    assert metric(client.app, "care_relay_invitations_total", channel="whatsapp", status="moved") == 1
    assert metric(client.app, "care_relay_invitations_total", channel="sms", status="sent") == 1
    assert metric(client.app, "care_relay_invitations_total", channel="whatsapp", status="failed") == 0


async def test_twilio_63016_at_send_moves_the_invitation_on(
    aiohttp_client: Any, database_url: str, fake: FakeTwilio
) -> None:
    """The relay believed the session open; Twilio says 63016: the same signal goes by SMS."""
    clock = Clock()
    client = await relay(aiohttp_client, database_url, fake, clock, ["whatsapp", "sms"])
    await write_in(client, fake)
    fake.close_session(ANA_WA)
    answer = await emit(client, clock)
    await client.app[OUTBOX].drain()
    assert [r["code"] for r in fake.requests][-2:] == [63016, None]
    assert [m["To"] for m in fake.messages] == [ANA_PHONE]
    assert (await loop_of(client, answer))["invitations"] == [{"agent": "ana", "channel": "sms", "status": "sent"}]


async def test_a_late_63016_moves_the_invitation_on(aiohttp_client: Any, database_url: str, fake: FakeTwilio) -> None:
    """Twilio took the message, then reports 63016 in a status callback: the same signal goes by SMS."""
    clock = Clock()
    client = await relay(aiohttp_client, database_url, fake, clock, ["whatsapp", "sms"])
    await write_in(client, fake)
    answer = await emit(client, clock)
    await client.app[OUTBOX].drain()
    [whatsapp] = fake.messages
    form, headers = status_callback(
        fake.auth_token, STATUS, message_sid=whatsapp["Sid"], status="undelivered", error_code=63016
    )
    assert (await client.post("/hooks/twilio/status", data=form, headers=headers)).status == 200
    await client.app[OUTBOX].drain()
    assert [m["To"] for m in fake.messages] == [f"whatsapp:{ANA_WA}", ANA_PHONE]
    assert (await loop_of(client, answer))["invitations"] == [{"agent": "ana", "channel": "sms", "status": "sent"}]


async def test_with_no_other_channel_the_invitation_fails_outside_session(
    aiohttp_client: Any, database_url: str, fake: FakeTwilio
) -> None:
    clock = Clock()
    client = await relay(aiohttp_client, database_url, fake, clock, ["whatsapp"])
    answer = await emit(client, clock)
    await client.app[OUTBOX].drain()
    assert fake.messages == []
    assert (await loop_of(client, answer))["invitations"] == [
        {"agent": "ana", "channel": "whatsapp", "status": "failed"}
    ]
    [row] = (await (await client.get("/admin/outbox?status=failed", headers=ADMIN)).json())["items"]
    assert "outside_session" in row["last_error"]


@pytest.mark.parametrize("code", [21211, 21614])
async def test_not_a_valid_or_not_a_mobile_number_is_no_longer_confirmed(
    aiohttp_client: Any, database_url: str, fake: FakeTwilio, code: int
) -> None:
    clock = Clock()
    client = await relay(aiohttp_client, database_url, fake, clock, ["sms"], relay_verify_addresses=True)
    await client.app[OUTBOX].drain()
    join = next(m for m in fake.messages if m["To"] == ANA_PHONE)
    reply = join["Body"].split("Reply JOIN ")[1][:4]
    form, headers = fake.inbound(INBOUND, from_=ANA_PHONE, to=SMS_FROM, body=f"JOIN {reply}")
    assert (await client.post("/hooks/twilio/inbound", data=form, headers=headers)).status == 200
    assert (await (await client.get("/admin/agents/ana", headers=ADMIN)).json())["verified"]["sms"] is True

    fake.fail_number(ANA_PHONE, code)
    answer = await emit(client, clock)
    await client.app[OUTBOX].drain()
    assert (await loop_of(client, answer))["invitations"] == [{"agent": "ana", "channel": "sms", "status": "failed"}]
    assert (await (await client.get("/admin/agents/ana", headers=ADMIN)).json())["verified"]["sms"] is False
    kinds = [e["kind"] for e in await audit(client)]
    assert "address_unconfirmed" in kinds
    assert (await emit(client, clock))["status"] == "unroutable"  # no invitation goes there until confirmed again


async def slack_relay(aiohttp_client: Any, database_url: str, slack: FakeSlack, clock: Clock) -> TestClient:
    """The relay on the fake Slack, addresses to be confirmed; Ana (Slack) and a grant seeded, her join DM sent."""
    settings = make_settings(
        database_url,
        slack_bot_token=DEFAULT_TOKEN,
        slack_signing_secret=SECRET,
        slack_api_url=slack.api_url,
        relay_public_base_url=PUBLIC,
        relay_verify_addresses=True,
    )
    client: TestClient = await aiohttp_client(create_app(settings, clock=clock, run_outbox=False))
    ana = {"id": "ana", "display": "Ana", "groups": ["care-circle"], "slack_user": "U0ANA"}
    assert (await client.post("/admin/agents", json=ana, headers=ADMIN)).status == 201
    grant = {"subject": "actor:raz", "scope": ["panic.ui"], "groups": ["care-circle"], "by": "admin"}
    assert (await client.post("/admin/consents", json=grant, headers=ADMIN)).status == 201
    await client.app[OUTBOX].drain()
    return client


async def test_slack_join_button_confirms_the_slack_account(
    aiohttp_client: Any, database_url: str, slack: FakeSlack
) -> None:
    """A new Slack user gets a DM with a Join button and no care data; pressing it confirms; then invitations go."""
    clock = Clock()
    client = await slack_relay(aiohttp_client, database_url, slack, clock)
    [(key, message)] = list(slack.messages.items())
    assert "Press Join" in message["text"] and "Raz" not in json.dumps(message)
    [button] = [e for b in message["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert button["action_id"] == "join_address"

    assert (await emit(client, clock))["status"] == "unroutable"

    # someone else pressing Ana's button confirms nothing
    stranger, headers = block_action(SECRET, user_id="U0EVE", action_id="join_address", value=button["value"])
    assert (await client.post("/slack/events", data=stranger, headers=headers)).status == 200
    assert (await (await client.get("/admin/agents/ana", headers=ADMIN)).json())["verified"] == {"slack": False}

    url = slack.new_response_url()
    pressed, headers = block_action(
        SECRET, user_id="U0ANA", action_id="join_address", value=button["value"], response_url=url
    )
    assert (await client.post("/slack/events", data=pressed, headers=headers)).status == 200
    assert (await (await client.get("/admin/agents/ana", headers=ADMIN)).json())["verified"] == {"slack": True}
    [replaced] = slack.calls_to("response_url")
    assert replaced["replace_original"] in (True, "true") and "gentle invitations can reach you" in replaced["text"]

    assert (await emit(client, clock))["status"] == "invited"
    await client.app[OUTBOX].drain()
    assert len(slack.messages) == 2 and key in slack.messages


async def test_a_number_no_longer_confirmed_reads_and_answers_nothing(
    aiohttp_client: Any, database_url: str, fake: FakeTwilio
) -> None:
    """After Twilio's 21211 unconfirmed Ana's number (no join code waits), LIST and an ack from it
    read and record nothing: one sentence says how to join; STOP is still kept."""
    clock = Clock()
    client = await relay(aiohttp_client, database_url, fake, clock, ["sms"], relay_verify_addresses=True)
    await client.app[OUTBOX].drain()
    code = next(m for m in fake.messages if m["To"] == ANA_PHONE)["Body"].split("Reply JOIN ")[1][:4]
    assert len(await text_from(client, fake, f"JOIN {code}")) == 1
    first = await emit(client, clock)
    await client.app[OUTBOX].drain()  # delivered: Ana holds an open invitation
    fake.fail_number(ANA_PHONE, 21211)
    await emit(client, clock)
    await client.app[OUTBOX].drain()
    assert (await (await client.get("/admin/agents/ana", headers=ADMIN)).json())["verified"]["sms"] is False

    unconfirmed = (
        "This number is not confirmed for care-relay yet, so nothing is sent here. Ask your admin to send a join code."
    )
    assert await text_from(client, fake, "LIST") == [unconfirmed]
    assert await text_from(client, fake, "1") == [unconfirmed]
    assert (await loop_of(client, first))["status"] == "invited"  # the "1" acked nothing
    assert await text_from(client, fake, "STOP") == []
    assert (await (await client.get("/admin/agents/ana", headers=ADMIN)).json())["opted_out"] == ["sms"]


async def text_from(client: TestClient, fake: FakeTwilio, text: str) -> list[str]:
    """Ana texts the relay from her SMS number; the TwiML messages of its answer."""
    form, headers = fake.inbound(INBOUND, from_=ANA_PHONE, to=SMS_FROM, body=text)
    response = await client.post("/hooks/twilio/inbound", data=form, headers=headers)
    assert response.status == 200
    return re.findall(r"<Message>(.*?)</Message>", html.unescape(await response.text()), flags=re.S)


async def test_a_person_retries_a_whatsapp_invitation_reported_outside_the_session(
    aiohttp_client: Any, database_url: str, fake: FakeTwilio
) -> None:
    """A late 63016 with no other channel fails the invitation; once Ana writes in again, a person's
    retry of that row sends it on WhatsApp."""
    clock = Clock()
    client = await relay(aiohttp_client, database_url, fake, clock, ["whatsapp"])
    await write_in(client, fake)
    answer = await emit(client, clock)
    await client.app[OUTBOX].drain()
    [whatsapp] = fake.messages
    form, headers = status_callback(
        fake.auth_token, STATUS, message_sid=whatsapp["Sid"], status="undelivered", error_code=63016
    )
    assert (await client.post("/hooks/twilio/status", data=form, headers=headers)).status == 200
    await client.app[OUTBOX].drain()
    assert (await loop_of(client, answer))["invitations"] == [
        {"agent": "ana", "channel": "whatsapp", "status": "failed"}
    ]
    [row] = (await (await client.get("/admin/outbox?status=failed", headers=ADMIN)).json())["items"]

    await write_in(client, fake, "MENU")
    retried = await client.post(f"/admin/outbox/{row['id']}/retry?by=admin", headers=ADMIN)
    assert retried.status == 202, await retried.text()
    await client.app[OUTBOX].drain()
    assert len(fake.messages) == 2 and fake.messages[1]["To"] == f"whatsapp:{ANA_WA}"
    assert (await loop_of(client, answer))["invitations"] == [{"agent": "ana", "channel": "whatsapp", "status": "sent"}]


async def test_an_unconfirmed_slack_account_sees_and_answers_nothing(
    aiohttp_client: Any, database_url: str, slack: FakeSlack
) -> None:
    """Ana is invited on Slack, then her Slack user is changed (say, mistyped): the new account's
    Home tab and /care show no invitation, and it cannot ack; the old one no longer names her."""
    clock = Clock()
    client = await slack_relay(aiohttp_client, database_url, slack, clock)
    [join] = list(slack.messages.values())
    [button] = [e for b in join["blocks"] if b["type"] == "actions" for e in b["elements"]]
    pressed, headers = block_action(SECRET, user_id="U0ANA", action_id="join_address", value=button["value"])
    assert (await client.post("/slack/events", data=pressed, headers=headers)).status == 200
    answer = await emit(client, clock)
    await client.app[OUTBOX].drain()
    invitation = await client.app[WRITER].run(lambda tx: tx.execute("SELECT id FROM invitation").fetchone()[0])

    assert (await client.patch("/admin/agents/ana", json={"slack_user": "U0WRONG"}, headers=ADMIN)).status == 200
    for user in ("U0WRONG", "U0ANA"):
        body, headers = event_request(SECRET, app_home_opened(user))
        assert (await client.post("/slack/events", data=body, headers=headers)).status == 200
        assert "Raz" not in json.dumps(slack.home_views[user]) and "/a/" not in json.dumps(slack.home_views[user])
        body, headers = slash_command(SECRET, user_id=user)
        care = await client.post("/slack/events", data=body, headers=headers)
        assert "Raz" not in await care.text()
        body, headers = block_action(SECRET, user_id=user, action_id="care_ack_1", value=f"{invitation}:1")
        assert (await client.post("/slack/events", data=body, headers=headers)).status == 200
    assert (await loop_of(client, answer))["status"] == "invited"  # nobody acked
