"""The real twilio SDK against tests.fakes.twilio.FakeTwilio, through relay.channels.twilio.client."""

from __future__ import annotations

import gc
import warnings
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from twilio.base.exceptions import TwilioRestException
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from relay.channels.twilio import client as sdk
from tests.fakes.twilio import MAX_BODY_CHARS, FakeTwilio, inbound_quick_reply, inbound_sms, status_callback

SMS_FROM = "+15005550006"
WA_FROM = "whatsapp:+14155238886"
AGENT = "+15551230001"
CALLBACK = "https://relay.example.org/hooks/twilio/status?invitation=inv_1&x=a%20b"
INBOUND_URL = "https://relay.example.org/hooks/twilio/inbound"


@pytest.fixture
async def fake() -> AsyncIterator[FakeTwilio]:
    async with FakeTwilio() as server:
        yield server


@pytest.fixture
async def twilio_client(fake: FakeTwilio) -> AsyncIterator[Client]:
    tw = sdk.make_client(fake.account_sid, fake.auth_token, fake.base_url)
    try:
        yield tw
    finally:
        await sdk.close_client(tw)


async def test_create_async_reaches_fake_and_returns_sid(fake: FakeTwilio, twilio_client: Client) -> None:
    """create_async goes to the fake, which records the form and returns a Twilio message."""
    msg = await twilio_client.messages.create_async(
        to=AGENT, from_=SMS_FROM, body="Hi — a soft invite", status_callback=CALLBACK
    )

    assert msg.sid.startswith("SM") and len(msg.sid) == 34
    assert msg.status == "queued"
    assert (msg.to, msg.from_, msg.body) == (AGENT, SMS_FROM, "Hi — a soft invite")
    assert msg.account_sid == fake.account_sid
    assert msg.date_created is not None and msg.date_created.tzinfo is not None
    assert msg.uri == f"/2010-04-01/Accounts/{fake.account_sid}/Messages/{msg.sid}.json"
    [sent] = fake.messages
    assert sent["To"] == AGENT and sent["From"] == SMS_FROM and sent["Body"] == "Hi — a soft invite"
    assert sent["StatusCallback"] == CALLBACK  # passed through verbatim, query string intact
    assert sent["Sid"] == msg.sid
    fetched = await twilio_client.messages(msg.sid).fetch_async()
    assert fetched.sid == msg.sid


async def test_status_callback_is_optional(fake: FakeTwilio, twilio_client: Client) -> None:
    """Without status_callback the SDK sends no StatusCallback field at all."""
    await twilio_client.messages.create_async(to=AGENT, from_=SMS_FROM, body="x")

    assert fake.messages[0]["StatusCallback"] is None
    assert "StatusCallback" not in fake.requests[0]["form"]


async def test_wrong_token_raises_401(fake: FakeTwilio) -> None:
    """A wrong auth token surfaces as TwilioRestException 401 / code 20003."""
    tw = sdk.make_client(fake.account_sid, "not-the-token", fake.base_url)
    try:
        with pytest.raises(TwilioRestException) as info:
            await tw.messages.create_async(to=AGENT, from_=SMS_FROM, body="x")
    finally:
        await sdk.close_client(tw)

    assert info.value.status == 401
    assert info.value.code == 20003
    assert "Authenticate" in info.value.msg
    assert fake.messages == [] and fake.requests == []


async def test_unsubscribed_21610(fake: FakeTwilio, twilio_client: Client) -> None:
    """Programmed 21610 surfaces with .status 400 and .code 21610, and nothing is recorded as sent."""
    fake.fail_next(status=400, code=21610)

    with pytest.raises(TwilioRestException) as info:
        await twilio_client.messages.create_async(to=AGENT, from_=SMS_FROM, body="x")

    assert (info.value.status, info.value.code) == (400, 21610)
    assert "Attempt to send to unsubscribed recipient" in info.value.msg
    assert info.value.method == "POST"
    assert fake.messages == []
    assert [(r["status"], r["code"]) for r in fake.requests] == [(400, 21610)]


async def test_invalid_to_21211(fake: FakeTwilio, twilio_client: Client) -> None:
    """Programmed 21211 carries Twilio's text naming the bad number."""
    fake.fail_next(status=400, code=21211)

    with pytest.raises(TwilioRestException) as info:
        await twilio_client.messages.create_async(to="+1555", from_=SMS_FROM, body="x")

    assert (info.value.status, info.value.code) == (400, 21211)
    assert "+1555" in info.value.msg


async def test_429_exposes_retry_after_via_last_response(fake: FakeTwilio, twilio_client: Client) -> None:
    """429 raises with status 429 / code 20429; Retry-After is not on the exception but on last_response()."""
    fake.fail_next(status=429, code=20429, retry_after=7)

    with pytest.raises(TwilioRestException) as info:
        await twilio_client.messages.create_async(to=AGENT, from_=SMS_FROM, body="x")

    exc = info.value
    assert (exc.status, exc.code) == (429, 20429)
    assert not any("retry" in name.lower() for name in vars(exc))  # the SDK drops response headers
    response = sdk.last_response()
    assert response is not None and response.status_code == 429
    assert response.headers["retry-after"] == "7"
    assert sdk.retry_after_seconds() == 7.0

    msg = await twilio_client.messages.create_async(to=AGENT, from_=SMS_FROM, body="x")  # the failure was used up
    assert msg.status == "queued"
    assert sdk.retry_after_seconds() is None


async def test_fail_next_times_and_500_without_code(fake: FakeTwilio, twilio_client: Client) -> None:
    """times=N fails N calls; a 500 without a Twilio code reports code == status."""
    fake.fail_next(status=500, times=2)

    for _ in range(2):
        with pytest.raises(TwilioRestException) as info:
            await twilio_client.messages.create_async(to=AGENT, from_=SMS_FROM, body="x")
        assert (info.value.status, info.value.code) == (500, 500)
    assert fake.pending_failures == 0
    await twilio_client.messages.create_async(to=AGENT, from_=SMS_FROM, body="x")
    assert [r["status"] for r in fake.requests] == [500, 500, 201]
    assert len(fake.messages) == 1


async def test_missing_body_is_21602(twilio_client: Client) -> None:
    """The fake validates like Twilio: no Body/MediaUrl/ContentSid -> 400 21602."""
    with pytest.raises(TwilioRestException) as info:
        await twilio_client.messages.create_async(to=AGENT, from_=SMS_FROM)
    assert (info.value.status, info.value.code) == (400, 21602)


async def test_body_over_1600_characters_is_21617(fake: FakeTwilio, twilio_client: Client) -> None:
    """The fake refuses like Twilio: a Body over 1,600 characters (an emoji counts two) -> 400 21617."""
    await twilio_client.messages.create_async(to=AGENT, from_=SMS_FROM, body="x" * MAX_BODY_CHARS)
    for body in ("x" * (MAX_BODY_CHARS + 1), "🌿" * (MAX_BODY_CHARS // 2) + "x"):
        with pytest.raises(TwilioRestException) as info:
            await twilio_client.messages.create_async(to=AGENT, from_=SMS_FROM, body=body)
        assert (info.value.status, info.value.code) == (400, 21617)
        assert "1600 character limit" in info.value.msg
    assert len(fake.messages) == 1
    assert [(r["status"], r["code"]) for r in fake.requests] == [(201, None), (400, 21617), (400, 21617)]


async def test_whatsapp_prefixes_pass_through(fake: FakeTwilio, twilio_client: Client) -> None:
    """whatsapp: addresses are sent and echoed unchanged."""
    msg = await twilio_client.messages.create_async(to=f"whatsapp:{AGENT}", from_=WA_FROM, body="hola")

    assert (msg.to, msg.from_) == (f"whatsapp:{AGENT}", WA_FROM)
    assert (fake.messages[0]["To"], fake.messages[0]["From"]) == (f"whatsapp:{AGENT}", WA_FROM)


def test_inbound_signature_validates_only_for_its_url() -> None:
    """inbound_sms signs with RequestValidator: valid for its URL, invalid for another or another token."""
    form, headers = inbound_sms("tok", INBOUND_URL, from_=AGENT, to=SMS_FROM, body="YES")
    sig = headers["X-Twilio-Signature"]
    validator = RequestValidator("tok")

    assert validator.validate(INBOUND_URL, form, sig)
    assert not validator.validate(INBOUND_URL + "?x=1", form, sig)
    assert not validator.validate("https://other.example.org/hooks/twilio/inbound", form, sig)
    assert not RequestValidator("other").validate(INBOUND_URL, form, sig)
    assert not validator.validate(INBOUND_URL, {**form, "Body": "NO"}, sig)
    assert form["MessageSid"] == form["SmsSid"] and form["MessageSid"].startswith("SM")
    assert (form["From"], form["To"], form["Body"], form["NumMedia"]) == (AGENT, SMS_FROM, "YES", "0")


def test_inbound_whatsapp_prefixes_and_status_callback_signature() -> None:
    """WhatsApp inbound gets whatsapp: prefixes; status_callback is signed and carries ErrorCode."""
    form, headers = inbound_sms(
        "tok", INBOUND_URL, from_=AGENT, to=WA_FROM, body="hi", whatsapp=True, message_sid="SM1"
    )
    assert (form["From"], form["To"], form["MessageSid"]) == (f"whatsapp:{AGENT}", WA_FROM, "SM1")
    assert form["WaId"] == AGENT.lstrip("+")
    assert RequestValidator("tok").validate(INBOUND_URL, form, headers["X-Twilio-Signature"])

    form, headers = status_callback("tok", CALLBACK, message_sid="SM1", status="undelivered", error_code=30003)
    assert (form["MessageSid"], form["MessageStatus"], form["ErrorCode"]) == ("SM1", "undelivered", "30003")
    assert RequestValidator("tok").validate(CALLBACK, form, headers["X-Twilio-Signature"])
    form, _ = status_callback("tok", CALLBACK, message_sid="SM1", status="delivered")
    assert "ErrorCode" not in form


async def test_inbound_helper_posts_to_an_aiohttp_handler(aiohttp_client: object) -> None:
    """Posting the helper's form to an aiohttp app validates against the URL that app sees."""
    seen: list[bool] = []

    async def handler(request: web.Request) -> web.Response:
        params = dict(await request.post())
        seen.append(RequestValidator("tok").validate(str(request.url), params, request.headers["X-Twilio-Signature"]))
        return web.Response(text="<Response/>", content_type="text/xml")

    app = web.Application()
    app.router.add_post("/hooks/twilio/inbound", handler)
    http = await aiohttp_client(app)  # type: ignore[operator]
    url = str(http.make_url("/hooks/twilio/inbound"))
    form, headers = inbound_sms("tok", url, from_=AGENT, to=SMS_FROM, body="YES ✓")
    resp = await http.post("/hooks/twilio/inbound", data=form, headers=headers)
    assert resp.status == 200
    assert seen == [True]


def test_rewrite_url() -> None:
    """The rewrite keeps path+query, touches only https *.twilio.com, and is a no-op for the default base."""
    url = "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages.json?PageSize=5"
    assert sdk.rewrite_url(url, "https://api.twilio.com") == url
    assert sdk.rewrite_url(url, "https://api.twilio.com/") == url
    assert sdk.rewrite_url("https://messaging.twilio.com/v1/Services", "https://api.twilio.com") == (
        "https://messaging.twilio.com/v1/Services"
    )
    assert sdk.rewrite_url(url, "http://127.0.0.1:5678") == (
        "http://127.0.0.1:5678/2010-04-01/Accounts/AC1/Messages.json?PageSize=5"
    )
    assert sdk.rewrite_url("https://api.dublin.ie1.twilio.com/x", "http://127.0.0.1:5678/tw/") == (
        "http://127.0.0.1:5678/tw/x"
    )
    assert sdk.rewrite_url("https://example.com/x", "http://127.0.0.1:5678") == "https://example.com/x"
    assert sdk.rewrite_url("http://api.twilio.com/x", "http://127.0.0.1:5678") == "http://api.twilio.com/x"
    assert sdk.rewrite_url("https://eviltwilio.com/x", "http://127.0.0.1:5678") == "https://eviltwilio.com/x"
    default = sdk.RewritingAsyncHttpClient("https://api.twilio.com")
    assert default.rewrite(url) == url


def test_make_client_outside_event_loop() -> None:
    """make_client works from sync code (no session is opened until the first request)."""
    tw = sdk.make_client("AC" + "0" * 32, "tok", "https://api.twilio.com")
    assert isinstance(tw.http_client, sdk.RewritingAsyncHttpClient)
    assert tw.http_client.session is None
    assert tw.http_client.is_async


async def test_close_client_leaves_no_unclosed_session(fake: FakeTwilio) -> None:
    """After close_client no ResourceWarning is emitted, and the client reopens if used again."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tw = sdk.make_client(fake.account_sid, fake.auth_token, fake.base_url)
        await tw.messages.create_async(to=AGENT, from_=SMS_FROM, body="1")
        session = tw.http_client.session
        await sdk.close_client(tw)
        assert session is not None and session.closed
        await tw.messages.create_async(to=AGENT, from_=SMS_FROM, body="2")
        await sdk.close_client(tw)
        await sdk.close_client(tw)  # idempotent
        del tw, session
        gc.collect()
    assert [w for w in caught if issubclass(w.category, ResourceWarning)] == []
    assert len(fake.messages) == 2


def test_timeout_is_applied() -> None:
    """The constructor timeout is used when the SDK passes none (the stock client ignores it)."""
    assert sdk.RewritingAsyncHttpClient("http://x", timeout=3).timeout == 3
    with pytest.raises(ValueError):  # noqa: PT011 - the SDK raises a bare ValueError(timeout)
        sdk.RewritingAsyncHttpClient("http://x", timeout=0)


# Messaging Services, templates, WhatsApp sessions and failing numbers --------------------------------

SERVICE = "MG" + "0123456789abcdef" * 2
TEMPLATE = "HX" + "fedcba9876543210" * 2


async def test_messaging_service_sid_stands_in_for_from(fake: FakeTwilio, twilio_client: Client) -> None:
    """MessagingServiceSid without From is accepted (Twilio picks the sender); neither of them is 21603."""
    msg = await twilio_client.messages.create_async(to=AGENT, messaging_service_sid=SERVICE, body="x")
    assert msg.messaging_service_sid == SERVICE and msg.from_ is None
    assert fake.messages[0]["MessagingServiceSid"] == SERVICE and fake.messages[0]["From"] is None
    with pytest.raises(TwilioRestException) as info:
        await twilio_client.messages.create_async(to=AGENT, body="x")
    assert (info.value.status, info.value.code) == (400, 21603)


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"content_variables": '{"1": "a"}'}, 21654),
        ({"content_sid": "HX123", "content_variables": '{"1": "a"}'}, 21655),
        ({"content_sid": TEMPLATE, "content_variables": "not json"}, 21656),
        ({"content_sid": TEMPLATE, "content_variables": '["a"]'}, 21656),
        ({"content_sid": TEMPLATE, "content_variables": '{"1": 2}'}, 21656),
        ({"content_sid": TEMPLATE, "content_variables": '{"1": ""}'}, 21656),
    ],
    ids=["variables-without-sid", "bad-sid", "not-json", "not-an-object", "not-a-string", "empty"],
)
async def test_content_templates_are_checked_like_twilio(
    fake: FakeTwilio, twilio_client: Client, fields: dict[str, str], code: int
) -> None:
    """ContentVariables need a ContentSid (21654), an HX… sid (21655) and a JSON object of non-empty strings (21656)."""
    with pytest.raises(TwilioRestException) as info:
        await twilio_client.messages.create_async(to=f"whatsapp:{AGENT}", from_=WA_FROM, **fields)
    assert (info.value.status, info.value.code) == (400, code)
    assert fake.messages == []


async def test_whatsapp_session_refuses_free_form_outside_it_with_63016(
    fake: FakeTwilio, twilio_client: Client
) -> None:
    """With sessions enforced: Body outside the session is 63016 at once, a template goes, an inbound opens it."""
    fake.enforce_whatsapp_sessions = True
    with pytest.raises(TwilioRestException) as info:
        await twilio_client.messages.create_async(to=f"whatsapp:{AGENT}", from_=WA_FROM, body="hi")
    assert (info.value.status, info.value.code) == (400, 63016)
    await twilio_client.messages.create_async(
        to=f"whatsapp:{AGENT}", from_=WA_FROM, content_sid=TEMPLATE, content_variables='{"1": "Raz"}'
    )
    assert fake.messages[0]["ContentSid"] == TEMPLATE and fake.messages[0]["Body"] is None
    form, headers = fake.inbound(INBOUND_URL, from_=AGENT, to=WA_FROM, body="hello", whatsapp=True)
    assert RequestValidator(fake.auth_token).validate(INBOUND_URL, form, headers["X-Twilio-Signature"])
    await twilio_client.messages.create_async(to=f"whatsapp:{AGENT}", from_=WA_FROM, body="hi")
    fake.close_session(AGENT)
    with pytest.raises(TwilioRestException):
        await twilio_client.messages.create_async(to=f"whatsapp:{AGENT}", from_=WA_FROM, body="hi again")
    assert [r["code"] for r in fake.requests] == [63016, None, None, 63016]


@pytest.mark.parametrize("code", [21211, 21614])
async def test_programmed_numbers_fail_with_21211_or_21614(fake: FakeTwilio, twilio_client: Client, code: int) -> None:
    """fail_number: every message to that number (SMS or WhatsApp) is refused with the code, as Twilio words it."""
    fake.fail_number(AGENT, code)
    for to, from_ in ((AGENT, SMS_FROM), (f"whatsapp:{AGENT}", WA_FROM)):
        with pytest.raises(TwilioRestException) as info:
            await twilio_client.messages.create_async(to=to, from_=from_, body="x")
        assert (info.value.status, info.value.code) == (400, code)
    with pytest.raises(ValueError, match="21211, 21614"):
        fake.fail_number(AGENT, 30003)


def test_quick_reply_form_is_signed_and_carries_the_payload() -> None:
    """A quick-reply tap: a WhatsApp message with ButtonPayload, ButtonText and Body (the title), signed."""
    token = "quick-reply-token-0123456789"
    form, headers = inbound_quick_reply(token, INBOUND_URL, from_=AGENT, to=WA_FROM, payload="K7QX 1", text="I'm here")
    assert (form["ButtonPayload"], form["ButtonText"], form["Body"]) == ("K7QX 1", "I'm here", "I'm here")
    assert form["From"] == f"whatsapp:{AGENT}" and form["MessageType"] == "button"
    assert RequestValidator(token).validate(INBOUND_URL, form, headers["X-Twilio-Signature"])
