"""Messaging Services, WhatsApp's 24-hour session and templates, Twilio's refusals of a number, quick-reply taps.

The channel is the real TwilioChannel over the real twilio SDK, pointed at FakeTwilio;
the quick-reply tap goes through the real app, signed with the SDK's RequestValidator.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from twilio.rest import Client

from relay import compose
from relay.app import create_app
from relay.channels.twilio import client as sdk
from relay.channels.twilio import open_channels
from relay.channels.twilio.send import TwilioChannel
from relay.delivery import Delivery, Invite
from relay.keys import OUTBOX
from relay.model import Agent, Signal
from tests.fakes.twilio import FakeTwilio, inbound_quick_reply, status_callback
from tests.support import ADMIN_TOKEN, fixture, fresh, make_settings, signed

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
PUBLIC = "https://relay.example"
STATUS = f"{PUBLIC}/hooks/twilio/status"
INBOUND = f"{PUBLIC}/hooks/twilio/inbound"
SMS_FROM = "+15005550006"
WA_FROM = "+14155238886"
SERVICE = "MG" + "0123456789abcdef" * 2
TEMPLATE = "HX" + "fedcba9876543210" * 2
ANA_PHONE = "+40722000111"
ANA_WA = "+40722000222"
LONG_WHISPER = ("could we talk for a while tonight " * 20).strip()


def _invite(
    *,
    session_open: bool = True,
    whisper: str | None = "could we talk?",
    source: str = "m3",
    **signal: Any,
) -> Invite:
    values: dict[str, Any] = {
        "source": source,
        "event_id": "evt_1",
        "type": "panic.ui",
        "ts": datetime.now(UTC),
        "subject": "actor:raz",
        "actor_display": "Raz",
        "whisper": whisper,
        "suggested_responses": ("soft-checkin",),
    }
    return Invite(
        invitation_id=1,
        channel="whatsapp",
        code="K7QX",
        agent=Agent(id="ana", display="Ana", phone=ANA_PHONE, whatsapp=ANA_WA),
        signal=Signal(**(values | signal)),
        responses=("soft-checkin", "hold-space"),
        action_url=f"{PUBLIC}/a/x",
        session_open=session_open,
    )


@pytest.fixture
async def fake() -> AsyncIterator[FakeTwilio]:
    async with FakeTwilio(enforce_whatsapp_sessions=True) as server:
        yield server


@pytest.fixture
async def client(fake: FakeTwilio) -> AsyncIterator[Client]:
    tw = sdk.make_client(fake.account_sid, fake.auth_token, fake.base_url)
    try:
        yield tw
    finally:
        await sdk.close_client(tw)


def whatsapp(client: Client, content_sid: str | None = TEMPLATE) -> TwilioChannel:
    return TwilioChannel("whatsapp", client, sender=WA_FROM, status_callback=STATUS, content_sid=content_sid)


async def test_sms_through_a_messaging_service_names_the_service_and_no_from(fake: FakeTwilio, client: Client) -> None:
    """With TWILIO_MESSAGING_SERVICE_SID, an SMS carries MessagingServiceSid and no From, even with TWILIO_SMS_FROM."""
    channel = TwilioChannel("sms", client, sender=SMS_FROM, status_callback=STATUS, messaging_service_sid=SERVICE)
    delivery = await channel.send(_invite())
    assert delivery.ok and delivery.provider_id
    [message] = fake.messages
    assert (message["MessagingServiceSid"], message["From"], message["To"]) == (SERVICE, None, ANA_PHONE)
    assert "From" not in fake.requests[0]["form"]
    assert "Raz sent a gentle signal" in message["Body"]


def test_a_messaging_service_turns_sms_on_and_whatsapp_still_needs_its_number() -> None:
    """SMS is on with a Messaging Service and no TWILIO_SMS_FROM; WhatsApp only with TWILIO_WHATSAPP_FROM."""
    twilio = {"twilio_account_sid": "AC1", "twilio_auth_token": "t" * 20, "twilio_api_base_url": "http://127.0.0.1:1"}
    settings = make_settings("sqlite+aiosqlite:///unused.db", twilio_messaging_service_sid=SERVICE, **twilio)
    assert settings.configured_channels == {"sms"}
    assert [c.name for c in open_channels(settings)] == ["sms"]
    both = make_settings(
        "sqlite+aiosqlite:///unused.db",
        twilio_messaging_service_sid=SERVICE,
        twilio_whatsapp_from=WA_FROM,
        twilio_whatsapp_content_sid=TEMPLATE,
        **twilio,
    )
    assert both.configured_channels == {"sms", "whatsapp"}


@pytest.mark.parametrize(
    ("field", "value", "said"),
    [
        ("twilio_messaging_service_sid", "PN" + "0" * 32, "MG followed by 32 hexadecimal digits"),
        ("twilio_messaging_service_sid", "MG123", "MG followed by 32 hexadecimal digits"),
        ("twilio_whatsapp_content_sid", SERVICE, "HX followed by 32 hexadecimal digits"),
    ],
)
def test_twilio_sids_are_checked_at_start_up(field: str, value: str, said: str) -> None:
    """A Messaging Service sid is MG…, a template's HX…, each 34 characters."""
    with pytest.raises(ValueError, match=said):
        make_settings("sqlite+aiosqlite:///unused.db", **{field: value})


async def test_inside_the_session_whatsapp_is_free_form_text(fake: FakeTwilio, client: Client) -> None:
    """An open session: the invitation goes as Body text, with no template, even when one is configured."""
    fake.open_session(ANA_WA)
    delivery = await whatsapp(client).send(_invite(session_open=True))
    assert delivery.ok
    [message] = fake.messages
    assert message["ContentSid"] is None and message["ContentVariables"] is None
    assert message["Body"] == compose.text_message(_invite())
    assert (message["From"], message["To"]) == (f"whatsapp:{WA_FROM}", f"whatsapp:{ANA_WA}")


async def test_outside_the_session_whatsapp_is_the_template_with_four_variables(
    fake: FakeTwilio, client: Client
) -> None:
    """A closed session with a template: ContentSid and ContentVariables (sender, whisper ≤ 300, code, link), no Body."""
    delivery = await whatsapp(client).send(_invite(session_open=False, whisper=LONG_WHISPER))
    assert delivery.ok, delivery
    [message] = fake.messages
    assert message["Body"] is None and "Body" not in fake.requests[0]["form"]
    assert message["ContentSid"] == TEMPLATE
    variables = json.loads(message["ContentVariables"])
    assert set(variables) == {"1", "2", "3", "4"}
    assert (variables["1"], variables["3"], variables["4"]) == ("Raz", "K7QX", f"{PUBLIC}/a/x")
    kept = variables["2"].removesuffix("…")
    assert len(variables["2"]) <= 300 and variables["2"].endswith("…")
    assert LONG_WHISPER.startswith(kept) and LONG_WHISPER[len(kept)] == " "  # cut after a whole word


@pytest.mark.parametrize(
    ("signal", "words"),
    [
        ({"whisper": None}, ("Raz", "no words, just a gentle signal")),
        ({"whisper": "line one\nline two\t\tend"}, ("Raz", "line one line two end")),
        ({"whisper": None, "type": "status.set", "actor_display": None}, ("raz", "no words, just a quiet update")),
        (
            {"source": "aisha", "subject": "tenant:x", "entity_type": "lead", "reasons": ("churn_risk", "complaint")},
            ("A lead", "may be drifting away, raised a complaint"),
        ),
        ({"source": "aisha", "subject": "tenant:x", "reasons": ()}, ("Someone", "could use a person")),
    ],
)
def test_template_variables_are_on_one_line_and_never_empty(signal: dict[str, Any], words: tuple[str, str]) -> None:
    """Sender and words as the text message words them, with a kind fallback: Twilio refuses an empty variable."""
    variables = compose.template_variables(_invite(**signal))
    assert (variables["1"], variables["2"]) == words
    assert all(v and "\n" not in v and "\t" not in v for v in variables.values())


async def test_outside_the_session_without_a_template_nothing_is_sent(fake: FakeTwilio, client: Client) -> None:
    """No template and a closed session: outside_session at once, and Twilio is never called."""
    delivery = await whatsapp(client, content_sid=None).send(_invite(session_open=False))
    assert delivery == Delivery(False, error="outside_session", outside_session=True)
    assert fake.requests == []


async def test_twilio_63016_is_outside_session(fake: FakeTwilio, client: Client) -> None:
    """Twilio's 63016 (free-form outside the window) is a permanent outside_session failure, no number in it."""
    delivery = await whatsapp(client).send(_invite(session_open=True))  # the relay thought it open; Twilio did not
    assert delivery == Delivery(False, error="outside_session (Twilio 400 (error 63016))", outside_session=True)
    assert [r["code"] for r in fake.requests] == [63016]


@pytest.mark.parametrize("code", [21211, 21614])
@pytest.mark.parametrize("channel", ["sms", "whatsapp"])
async def test_not_a_valid_or_not_a_mobile_number_is_unverified(
    fake: FakeTwilio, client: Client, channel: str, code: int
) -> None:
    """21211 and 21614 fail the invitation and mark the address unverified; the error holds no number."""
    fake.fail_number(ANA_PHONE if channel == "sms" else ANA_WA, code)
    fake.open_session(ANA_WA)
    sender = SMS_FROM if channel == "sms" else WA_FROM
    delivery = await TwilioChannel(channel, client, sender=sender, status_callback=STATUS).send(_invite())
    assert delivery == Delivery(False, error=f"Twilio 400 (error {code})", unverified=True)
    assert not delivery.outside_session and not delivery.opted_out


async def test_21610_still_opts_out(fake: FakeTwilio, client: Client) -> None:
    """21610 (the agent sent STOP) keeps opting the channel out, and is not 'unverified'."""
    fake.fail_next(status=400, code=21610)
    fake.open_session(ANA_WA)
    delivery = await whatsapp(client).send(_invite())
    assert delivery.opted_out and not delivery.unverified and not delivery.outside_session


# A quick-reply tap, through the real app ----------------------------------------------------------


async def _relay(aiohttp_client: Any, database_url: str, fake: FakeTwilio) -> TestClient:
    settings = make_settings(
        database_url,
        twilio_account_sid=fake.account_sid,
        twilio_auth_token=fake.auth_token,
        twilio_whatsapp_from=WA_FROM,
        twilio_whatsapp_content_sid=TEMPLATE,
        twilio_api_base_url=fake.base_url,
        relay_public_base_url=PUBLIC,
    )
    relay: TestClient = await aiohttp_client(create_app(settings, run_outbox=False))
    agent = {"id": "ana", "display": "Ana", "groups": ["care-circle"], "whatsapp": ANA_WA, "channels": ["whatsapp"]}
    assert (await relay.post("/admin/agents", json=agent, headers=ADMIN)).status == 201
    grant = {"subject": "actor:raz", "scope": ["panic.ui"], "groups": ["care-circle"], "by": "admin"}
    assert (await relay.post("/admin/consents", json=grant, headers=ADMIN)).status == 201
    return relay


async def _tap(relay: TestClient, fake: FakeTwilio, payload: str, text: str) -> list[str]:
    form, headers = inbound_quick_reply(fake.auth_token, INBOUND, from_=ANA_WA, to=WA_FROM, payload=payload, text=text)
    response = await relay.post("/hooks/twilio/inbound", data=form, headers=headers)
    assert response.status == 200, await response.text()
    root = ET.fromstring(await response.text())  # noqa: S314 - the relay's own TwiML answer
    return [m.text or "" for m in root.iter("Message")]


async def test_a_quick_reply_tap_acks_and_closes_like_a_typed_reply(
    aiohttp_client: Any, database_url: str, fake: FakeTwilio
) -> None:
    """Outside the session the template goes; its quick-reply tap `<CODE> 1` acks and `DONE <CODE>` closes,
    whatever the button's title says."""
    relay = await _relay(aiohttp_client, database_url, fake)
    body, headers = signed("m3", fresh("m3", fixture("m3", "panic.ui__golden")))
    answer = await (await relay.post("/hooks/m3", data=body, headers=headers)).json()
    await relay.app[OUTBOX].drain()
    [message] = fake.messages
    assert message["ContentSid"] == TEMPLATE and message["Body"] is None
    code = json.loads(message["ContentVariables"])["3"]

    assert await _tap(relay, fake, f"{code} 1", "I'm here") == ["Thank you, Ana — recorded: Check in gently."]
    loop = await (await relay.get(answer["status_url"])).json()
    assert loop["status"] == "acked"
    assert await _tap(relay, fake, f"DONE {code}", "All done") == ["Thank you, Ana — closed: Done."]
    assert (await (await relay.get(answer["status_url"])).json())["status"] == "done"


async def test_a_late_63016_status_callback_names_outside_session(
    aiohttp_client: Any, database_url: str, fake: FakeTwilio
) -> None:
    """63016 reported after the send (as Twilio often does) fails the invitation with outside_session in its error."""
    relay = await _relay(aiohttp_client, database_url, fake)
    body, headers = signed("m3", fresh("m3", fixture("m3", "panic.ui__golden")))
    answer = await (await relay.post("/hooks/m3", data=body, headers=headers)).json()
    fake.open_session(ANA_WA)
    await relay.app[OUTBOX].drain()
    [message] = fake.messages
    form, signature = status_callback(
        fake.auth_token, STATUS, message_sid=message["Sid"], status="undelivered", error_code=63016
    )
    assert (await relay.post("/hooks/twilio/status", data=form, headers=signature)).status == 200
    loop = await (await relay.get(answer["status_url"])).json()
    assert loop["invitations"][0]["status"] == "failed"
