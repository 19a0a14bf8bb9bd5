"""SMS and WhatsApp through Twilio, end to end: the real app and the real twilio SDK against FakeTwilio.

Inbound requests are signed with the SDK's RequestValidator for the public URL
(RELAY_PUBLIC_BASE_URL), never for the test server's own address; nothing in the SDK is
patched and signature checks are never switched off.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from twilio.request_validator import RequestValidator

from relay.app import create_app
from relay.channels.twilio import client as sdk
from relay.channels.twilio.send import TwilioChannel
from relay.delivery import Delivery, Invite
from relay.keys import OUTBOX, WRITER
from relay.model import Agent, Signal
from relay.text import size
from tests.conftest import BOTH_DATABASES
from tests.fakes.twilio import DEFAULT_AUTH_TOKEN, FakeTwilio, inbound_sms, status_callback
from tests.support import (
    ADMIN_TOKEN,
    fixture,
    fresh,
    make_settings,
    metric,
    refused_port,
    signed,
    wrote_in_on_whatsapp,
)

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
PUBLIC = "https://relay.example"
INBOUND = f"{PUBLIC}/hooks/twilio/inbound"
STATUS = f"{PUBLIC}/hooks/twilio/status"
SMS_FROM = "+15005550006"
WA_FROM = "+14155238886"
ANA_PHONE = "+40722000111"
ANA_WA = "+40722000222"
STRANGER = "+40744999888"
FULL_NUMBERS = (ANA_PHONE, ANA_WA, STRANGER, ANA_PHONE.lstrip("+"), ANA_WA.lstrip("+"), STRANGER.lstrip("+"))
REPLY = re.compile(r"Reply ([A-Z2-9]{4}) 1 for Check in gently")


def ana(*channels: str) -> dict[str, Any]:
    return {
        "id": "ana",
        "display": "Ana",
        "groups": ["care-circle"],
        "phone": ANA_PHONE,
        "whatsapp": ANA_WA,
        "channels": list(channels),
    }


@pytest.fixture
async def fake() -> AsyncIterator[FakeTwilio]:
    async with FakeTwilio() as server:
        yield server


async def start(
    aiohttp_client: Any, database_url: str, fake: FakeTwilio, *channels: str, **overrides: Any
) -> TestClient:
    """The relay with Twilio pointed at the fake, the outbox driven by hand, Ana and a grant seeded."""
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
    client: TestClient = await aiohttp_client(create_app(settings, run_outbox=False))
    assert (await client.post("/admin/agents", json=ana(*(channels or ("sms",))), headers=ADMIN)).status == 201
    await wrote_in_on_whatsapp(
        client.app, "ana"
    )  # free-form WhatsApp: tests/relay/test_channels_in_production.py does the rest
    grant = {"subject": "actor:raz", "scope": ["panic.ui"], "groups": ["care-circle"], "by": "admin"}
    assert (await client.post("/admin/consents", json=grant, headers=ADMIN)).status == 201
    return client


async def emit(client: TestClient) -> dict[str, Any]:
    """A fresh panic.ui from Raz (targets Ana), accepted."""
    body, headers = signed("m3", fresh("m3", fixture("m3", "panic.ui__golden")))
    response = await client.post("/hooks/m3", data=body, headers=headers)
    assert response.status == 202, await response.text()
    return await response.json()


async def loop_of(client: TestClient, answer: dict[str, Any]) -> dict[str, Any]:
    return await (await client.get(answer["status_url"])).json()


async def send_all(client: TestClient) -> None:
    await client.app[OUTBOX].drain()


async def reply(
    client: TestClient, body: str, *, from_: str | None = None, whatsapp: bool = False, sid: str | None = None
) -> list[str]:
    """Play Twilio posting an inbound message (from Ana by default); the TwiML messages of the answer."""
    form, headers = inbound_sms(
        DEFAULT_AUTH_TOKEN,
        INBOUND,
        from_=from_ or (ANA_WA if whatsapp else ANA_PHONE),
        to=WA_FROM if whatsapp else SMS_FROM,
        body=body,
        whatsapp=whatsapp,
        message_sid=sid,
    )
    response = await client.post("/hooks/twilio/inbound", data=form, headers=headers)
    assert response.status == 200, await response.text()
    assert response.content_type == "application/xml"
    root = ET.fromstring(await response.text())  # noqa: S314 - the relay's own TwiML answer, not outside input
    assert root.tag == "Response"
    return [m.text or "" for m in root.iter("Message")]


async def rows(client: TestClient, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in await client.app[WRITER].run(lambda tx: tx.execute(sql, params).fetchall())]


async def audit(client: TestClient) -> list[dict[str, Any]]:
    return (await (await client.get("/admin/audit?limit=200", headers=ADMIN)).json())["items"]


async def agent(client: TestClient) -> dict[str, Any]:
    return await (await client.get("/admin/agents/ana", headers=ADMIN)).json()


def watch_logs(caplog: pytest.LogCaptureFixture) -> None:
    """Every INFO line, and the relay's own DEBUG lines (aiosqlite's DEBUG echoes query parameters)."""
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.DEBUG, logger="care_relay")


def code_in(message: dict[str, Any]) -> str:
    found = REPLY.search(message["Body"])
    assert found, message["Body"]
    return found.group(1)


@BOTH_DATABASES
@pytest.mark.parametrize("whatsapp", [False, True], ids=["sms", "whatsapp"])
async def test_golden_path(
    aiohttp_client: Any,
    database_url: str,
    fake: FakeTwilio,
    whatsapp: bool,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Signal → SMS/WhatsApp with code, link and StatusCallback → "<code> 1" acks → "DONE <code> …" closes."""
    watch_logs(caplog)
    channel = "whatsapp" if whatsapp else "sms"
    client = await start(aiohttp_client, database_url, fake, channel)
    answer = await emit(client)
    await send_all(client)

    [message] = fake.messages
    assert message["To"] == (f"whatsapp:{ANA_WA}" if whatsapp else ANA_PHONE)
    assert message["From"] == (f"whatsapp:{WA_FROM}" if whatsapp else SMS_FROM)
    assert message["StatusCallback"] == STATUS
    assert f"Or open {PUBLIC}/a/" in message["Body"] and "Raz sent a gentle signal" in message["Body"]
    code = code_in(message)
    loop = await loop_of(client, answer)
    assert loop["invitations"] == [{"agent": "ana", "channel": channel, "status": "sent"}]

    assert await reply(client, f"{code.lower()}  1", whatsapp=whatsapp) == [
        "Thank you, Ana — recorded: Check in gently."
    ]
    loop = await loop_of(client, answer)
    assert loop["status"] == "acked"
    assert [(a["by"], a["action"]) for a in loop["acks"]] == [({"id": "ana", "display": "Ana"}, "soft-checkin")]

    await send_all(client)  # the queued message update: an SMS cannot be edited, so nothing is sent
    assert len(fake.messages) == 1
    assert await rows(client, "SELECT status FROM outbox WHERE kind = 'update'") == [("sent",)]

    texts = await reply(client, f"DONE {code} held-space: all calm", whatsapp=whatsapp)
    assert texts == ["Thank you, Ana — closed: I held space."]
    loop = await loop_of(client, answer)
    assert loop["status"] == "done"
    assert loop["done"]["by"] == {"id": "ana", "display": "Ana"}
    assert (loop["done"]["outcome"], loop["done"]["note"]) == ("held-space", "all calm")
    stored = await rows(client, "SELECT channel, from_redacted, outcome FROM inbound_message ORDER BY id")
    shown = "+40…0222" if whatsapp else "+40…0111"
    assert stored == [(channel, shown, "ack:recorded"), (channel, shown, "done:recorded")]
    for text in (json.dumps(await audit(client)), capsys.readouterr().out, caplog.text):
        assert not any(number in text for number in FULL_NUMBERS)


async def test_code_may_be_left_out_with_one_open_invitation(
    aiohttp_client: Any, database_url: str, fake: FakeTwilio
) -> None:
    """With one open invitation "soft-checkin" acks it and "DONE" closes it with outcome "done"."""
    client = await start(aiohttp_client, database_url, fake, "whatsapp")
    answer = await emit(client)
    await send_all(client)
    assert await reply(client, "Soft-Checkin", whatsapp=True) == ["Thank you, Ana — recorded: Check in gently."]
    assert await reply(client, "done", whatsapp=True) == ["Thank you, Ana — closed: Done."]
    loop = await loop_of(client, answer)
    assert (loop["status"], loop["done"]["outcome"], loop["done"]["note"]) == ("done", "done", "")
    assert await reply(client, "DONE", whatsapp=True) == [
        "You have no open invitations right now, so there is nothing to answer. Thank you."
    ]


@BOTH_DATABASES
async def test_replayed_message_sid_records_once(aiohttp_client: Any, database_url: str, fake: FakeTwilio) -> None:
    """The same MessageSid five times at once: recorded once, one thanks, the replays get an empty TwiML answer."""
    client = await start(aiohttp_client, database_url, fake)
    answer = await emit(client)
    await send_all(client)
    code = code_in(fake.messages[0])
    form, headers = inbound_sms(DEFAULT_AUTH_TOKEN, INBOUND, from_=ANA_PHONE, to=SMS_FROM, body=f"{code} 2")

    async def post() -> str:
        response = await client.post("/hooks/twilio/inbound", data=form, headers=headers)
        assert response.status == 200
        return await response.text()

    answers = await asyncio.gather(*(post() for _ in range(5)))
    assert sorted("<Message>" in text for text in answers) == [False] * 4 + [True]
    assert any("Thank you, Ana — recorded: Hold space." in text for text in answers)
    assert await rows(client, "SELECT outcome FROM inbound_message") == [("ack:recorded",)]
    assert len((await loop_of(client, answer))["acks"]) == 1
    assert [a["kind"] for a in await audit(client)].count("ack") == 1
    assert metric(client.app, "care_relay_inbound_messages_total", channel="sms", result="replayed") == 4


def _signature(params: dict[str, str], url: str, token: str = DEFAULT_AUTH_TOKEN) -> dict[str, str]:
    return {"X-Twilio-Signature": RequestValidator(token).compute_signature(url, params)}


FORGERIES = {
    "tampered": lambda params, url, own: (
        {**params, "Body": "K7QX 2", "MessageStatus": "read"},
        _signature(params, url),
    ),
    "unsigned": lambda params, url, own: (params, {}),
    # what a relay validating against request.url (not RELAY_PUBLIC_BASE_URL) would accept
    "own_host": lambda params, url, own: (params, _signature(params, own)),
    "other_token": lambda params, url, own: (params, _signature(params, url, "not-the-auth-token")),
}


@pytest.mark.parametrize("forgery", FORGERIES)
@pytest.mark.parametrize("path", ["/hooks/twilio/inbound", "/hooks/twilio/status"])
async def test_bad_signature_is_403_and_stores_nothing(
    aiohttp_client: Any, database_url: str, fake: FakeTwilio, forgery: str, path: str
) -> None:
    """A tampered, unsigned, wrong-token or wrong-host (not RELAY_PUBLIC_BASE_URL) signature: 403, nothing stored."""
    client = await start(aiohttp_client, database_url, fake)
    answer = await emit(client)
    await send_all(client)
    if path.endswith("inbound"):
        params, _ = inbound_sms(
            DEFAULT_AUTH_TOKEN, INBOUND, from_=ANA_PHONE, to=SMS_FROM, body=f"{code_in(fake.messages[0])} 1"
        )
    else:
        params, _ = status_callback(DEFAULT_AUTH_TOKEN, STATUS, message_sid=fake.messages[0]["Sid"], status="delivered")
    form, headers = FORGERIES[forgery](params, PUBLIC + path, str(client.make_url(path)))
    response = await client.post(path, data=form, headers=headers)
    assert response.status == 403
    assert (await response.json())["error"] == "forbidden"
    assert await rows(client, "SELECT id FROM inbound_message") == []
    loop = await loop_of(client, answer)
    assert loop["status"] == "invited" and loop["acks"] == []
    assert loop["invitations"][0]["status"] == "sent"


async def test_unknown_number_gets_empty_answer_and_is_rate_limited(
    aiohttp_client: Any,
    database_url: str,
    fake: FakeTwilio,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A stranger: empty TwiML and one redacted verification row each, past the hourly limit only a counter."""
    watch_logs(caplog)
    client = await start(aiohttp_client, database_url, fake, relay_unknown_sender_max_per_hour=2)
    for n in range(4):
        assert await reply(client, f"hello {n}", from_=STRANGER) == []
    assert await reply(client, "hi", from_=STRANGER, whatsapp=True) == []  # the same number on WhatsApp
    attempts = await rows(client, "SELECT number_redacted, number_hash, channel, outcome FROM verification_attempt")
    assert [(r[0], r[2], r[3]) for r in attempts] == [("+40…9888", "sms", "unknown_number")] * 2
    assert len({r[1] for r in attempts}) == 1 and STRANGER.lstrip("+") not in attempts[0][1]
    assert metric(client.app, "care_relay_inbound_messages_total", channel="sms", result="unknown_limited") == 2
    assert metric(client.app, "care_relay_inbound_messages_total", channel="whatsapp", result="unknown_limited") == 1
    assert metric(client.app, "care_relay_unknown_senders_total", channel="sms") == 4
    assert len(await rows(client, "SELECT id FROM inbound_message")) == 2
    dump = json.dumps(await rows(client, "SELECT * FROM inbound_message")) + json.dumps(await audit(client))
    for text in (dump, capsys.readouterr().out, caplog.text):
        assert not any(number in text for number in FULL_NUMBERS)


async def test_inactive_agent_counts_as_unknown(aiohttp_client: Any, database_url: str, fake: FakeTwilio) -> None:
    """An agent switched off in the directory is answered like a stranger: nothing is recorded for a loop."""
    client = await start(aiohttp_client, database_url, fake)
    answer = await emit(client)
    await send_all(client)
    response = await client.patch("/admin/agents/ana", json={"active": False}, headers=ADMIN)
    assert response.status == 200
    assert await reply(client, f"{code_in(fake.messages[0])} 1") == []
    assert (await loop_of(client, answer))["acks"] == []
    assert len(await rows(client, "SELECT id FROM verification_attempt")) == 1


async def test_grammar_through_http(aiohttp_client: Any, database_url: str, fake: FakeTwilio) -> None:
    """Several open invitations: no code, an unknown code or a bad number get a kind how-to; LIST and MENU answer."""
    client = await start(aiohttp_client, database_url, fake)
    first, second = await emit(client), await emit(client)
    await send_all(client)
    # Oldest invitation first, as the replies list them; the outbox may send the two in either order.
    codes = [code for (code,) in await rows(client, "SELECT code FROM invitation ORDER BY id")]
    assert sorted(codes) == sorted(code_in(m) for m in fake.messages)

    [text] = await reply(client, "1")
    assert (
        text == f'You have 2 open invitations ({codes[0]}, {codes[1]}). Please put the code first, e.g. "{codes[0]} 1".'
    )
    [text] = await reply(client, "ZZ99 1")
    assert text.startswith("I don't have an open invitation ZZ99 for you. To answer") and f'"{codes[0]} 1"' in text
    [text] = await reply(client, f"{codes[1]} 7")
    assert text == f'For {codes[1]} you can answer 1 Check in gently, 2 Hold space — e.g. "{codes[1]} 1".'
    [text] = await reply(client, "list")
    assert text.splitlines() == [
        "Open invitations:",
        f"{codes[0]} — Raz: 1 Check in gently, 2 Hold space",
        f"{codes[1]} — Raz: 1 Check in gently, 2 Hold space",
    ]
    [text] = await reply(client, "MENU")
    assert text.startswith(f'To answer, send the code and a number, e.g. "{codes[0]} 1".')
    [text] = await reply(client, codes[1])
    assert text == f"Reply {codes[1]} 1 for Check in gently, {codes[1]} 2 for Hold space."
    assert await reply(client, "HELP") == []

    for answer in (first, second):
        loop = await loop_of(client, answer)
        assert loop["status"] == "invited" and loop["acks"] == []
    refusals = [a for a in await audit(client) if a["kind"] == "refusal"]
    assert [(r["event_id"], r["agent"], r["detail"]["via"]) for r in refusals] == [(second["id"], "ana", "sms")]
    outcomes = [r[0] for r in await rows(client, "SELECT outcome FROM inbound_message ORDER BY id")]
    assert outcomes == [
        "refused:need_code",
        "refused:unknown_code",
        "refused:bad_choice",
        "list",
        "menu",
        "remind",
        "help",
    ]


async def test_list_stays_one_message_and_says_how_many_it_left_out(
    aiohttp_client: Any, database_url: str, fake: FakeTwilio
) -> None:
    """LIST with many open invitations from a sender with a long name, each offering ten long responses: one
    body within Twilio's 1,600 characters, the oldest invitations first, ending with how many more there are."""
    client = await start(aiohttp_client, database_url, fake, relay_agent_max_invites_per_hour=100)
    responses = [f"stay-close-and-listen-for-as-long-as-it-takes-tonight-option-{n}" for n in range(10)]
    name = "Razvan " + "the-very-long-family-name " * 7
    for _ in range(8):
        payload = fresh("m3", fixture("m3", "panic.ui__golden"))
        payload["actor"]["display"] = name.strip()
        payload["intent"]["suggested_responses"] = responses
        body, headers = signed("m3", payload)
        response = await client.post("/hooks/m3", data=body, headers=headers)
        assert (await response.json())["status"] == "invited"
    await send_all(client)
    codes = [code for (code,) in await rows(client, "SELECT code FROM invitation ORDER BY id")]
    assert len(codes) == 8

    [text] = await reply(client, "LIST")
    assert size(text) <= 1600, size(text)
    lines = text.splitlines()
    listed = lines[1:-1]
    assert lines[0] == "Open invitations:" and listed, text
    assert [line.split(" — ", 1)[0] for line in listed] == codes[: len(listed)]
    assert lines[-1] == f"…and {8 - len(listed)} more."
    assert all("Razvan the-very-long-family-name" in line and ": 1 " in line and "10 " in line for line in listed)


async def test_unsubscribed_on_send_opts_out_and_next_signal_skips_sms(
    aiohttp_client: Any,
    database_url: str,
    fake: FakeTwilio,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Twilio 21610 on a send: the invitation fails, Ana is opted out of sms, the next signal goes by WhatsApp."""
    watch_logs(caplog)
    client = await start(aiohttp_client, database_url, fake, "sms", "whatsapp")
    fake.fail_next(status=400, code=21610)
    answer = await emit(client)
    await send_all(client)
    assert fake.messages == [] and [r["code"] for r in fake.requests] == [21610]
    assert (await loop_of(client, answer))["invitations"] == [{"agent": "ana", "channel": "sms", "status": "failed"}]
    assert (await agent(client))["opted_out"] == ["sms"]

    second = await emit(client)
    assert (await loop_of(client, second))["invitations"] == [
        {"agent": "ana", "channel": "whatsapp", "status": "queued"}
    ]
    await send_all(client)
    assert [m["To"] for m in fake.messages] == [f"whatsapp:{ANA_WA}"]
    inbox = json.dumps(await (await client.get("/admin/inbox", headers=ADMIN)).json())
    assert "21610" in inbox
    dump = inbox + json.dumps(await audit(client)) + json.dumps(await rows(client, "SELECT last_error FROM outbox"))
    for text in (dump, capsys.readouterr().out, caplog.text):
        assert not any(number in text for number in FULL_NUMBERS)


async def test_stop_and_start(aiohttp_client: Any, database_url: str, fake: FakeTwilio) -> None:
    """STOP opts Ana out of that channel (empty TwiML: Twilio answers it); START lifts it."""
    client = await start(aiohttp_client, database_url, fake, "sms")
    assert await reply(client, "STOP") == []
    assert (await agent(client))["opted_out"] == ["sms"]
    assert (await emit(client))["status"] == "unroutable"
    assert await reply(client, " start ") == []
    assert (await agent(client))["opted_out"] == []
    assert (await emit(client))["status"] == "invited"
    kinds = [a["kind"] for a in await audit(client) if a["kind"].startswith("opt_")]
    assert sorted(kinds) == ["opt_in", "opt_out"]


@BOTH_DATABASES
async def test_delivery_status_is_never_an_ack(aiohttp_client: Any, database_url: str, fake: FakeTwilio) -> None:
    """Delivered and read move the invitation only: the loop stays invited; late "sent" never moves it back."""
    client = await start(aiohttp_client, database_url, fake)
    answer = await emit(client)
    await send_all(client)
    sid = fake.messages[0]["Sid"]

    async def status(value: str, message_sid: str = sid, **extra: Any) -> None:
        form, headers = status_callback(DEFAULT_AUTH_TOKEN, STATUS, message_sid=message_sid, status=value, **extra)
        response = await client.post("/hooks/twilio/status", data=form, headers=headers)
        assert response.status == 200, await response.text()

    for value, shown in (("delivered", "delivered"), ("sent", "delivered"), ("read", "read"), ("delivered", "read")):
        await status(value)
        loop = await loop_of(client, answer)
        assert loop["invitations"][0]["status"] == shown
        assert loop["status"] == "invited" and loop["acks"] == []
    await status("delivered", message_sid="SM" + "0" * 32)  # unknown sid: 200, nothing moves
    assert metric(client.app, "care_relay_delivery_reports_total", status="unknown_sid") == 1


@BOTH_DATABASES
async def test_a_late_failed_after_delivered_moves_nothing(
    aiohttp_client: Any, database_url: str, fake: FakeTwilio, capsys: pytest.CaptureFixture[str]
) -> None:
    """Callbacks can arrive out of order: "failed" after "delivered" leaves the invitation delivered, unaudited."""
    client = await start(aiohttp_client, database_url, fake)
    answer = await emit(client)
    await send_all(client)
    sid = fake.messages[0]["Sid"]
    capsys.readouterr()
    for value, code in (("delivered", None), ("failed", 30008)):
        form, headers = status_callback(DEFAULT_AUTH_TOKEN, STATUS, message_sid=sid, status=value, error_code=code)
        assert (await client.post("/hooks/twilio/status", data=form, headers=headers)).status == 200
    assert (await loop_of(client, answer))["invitations"][0]["status"] == "delivered"
    assert "delivery_failed" not in capsys.readouterr().out
    # the same "failed" first does move it, and says so
    other = await emit(client)
    await send_all(client)
    form, headers = status_callback(
        DEFAULT_AUTH_TOKEN, STATUS, message_sid=fake.messages[-1]["Sid"], status="failed", error_code=30008
    )
    assert (await client.post("/hooks/twilio/status", data=form, headers=headers)).status == 200
    assert (await loop_of(client, other))["invitations"][0]["status"] == "failed"
    assert '"kind":"delivery_failed"' in capsys.readouterr().out


async def test_delivery_status_that_races_the_send_commit_is_kept(
    aiohttp_client: Any, database_url: str, fake: FakeTwilio
) -> None:
    """Twilio may call back before the send's commit has stored the sid: the status waits for it, not lost."""
    client = await start(aiohttp_client, database_url, fake)
    answer = await emit(client)
    sid = "SM" + "7" * 32
    form, headers = status_callback(DEFAULT_AUTH_TOKEN, STATUS, message_sid=sid, status="delivered")
    writer = client.app[WRITER]
    looked = writer.jobs_committed
    early = asyncio.ensure_future(client.post("/hooks/twilio/status", data=form, headers=headers))
    # the callback is in and has looked once for a sid nobody has yet (its look is its only write); this
    # poll wakes before its next look (0.1 s later, same event loop), so the commit below is queued on
    # the writer ahead of that look however slow the machine is: it lands between two looks
    deadline = time.monotonic() + 30
    while writer.jobs_committed == looked:
        assert not early.done() and time.monotonic() < deadline, "the callback never looked for the sid"
        await asyncio.sleep(0.01)
    assert not early.done()
    # the send's commit: the invitation is sent, under Twilio's sid
    await writer.run(lambda tx: tx.execute("UPDATE invitation SET status = 'sent', provider_id = ?", (sid,)))
    response = await early
    assert response.status == 200
    loop = await loop_of(client, answer)
    assert loop["invitations"][0]["status"] == "delivered" and loop["status"] == "invited"
    assert metric(client.app, "care_relay_delivery_reports_total", status="unknown_sid") == 0


async def test_failed_status_and_unsubscribed_callback(
    aiohttp_client: Any, database_url: str, fake: FakeTwilio
) -> None:
    """undelivered → failed with Twilio's code; ErrorCode 21610 in a callback also opts the agent out."""
    client = await start(aiohttp_client, database_url, fake, "sms", "whatsapp")
    answer = await emit(client)
    await send_all(client)
    form, headers = status_callback(
        DEFAULT_AUTH_TOKEN, STATUS, message_sid=fake.messages[0]["Sid"], status="undelivered", error_code=21610
    )
    assert (await client.post("/hooks/twilio/status", data=form, headers=headers)).status == 200
    assert (await loop_of(client, answer))["invitations"][0]["status"] == "failed"
    assert await rows(client, "SELECT error FROM invitation") == [("Twilio error 21610",)]
    assert (await agent(client))["opted_out"] == ["sms"]


# The channel alone: Twilio's answers become retry / permanent ---------------------------------------


def _invite(channel: str = "sms", **agent: Any) -> Invite:
    signal = Signal(
        source="m3",
        event_id="evt_1",
        type="panic.ui",
        ts=datetime.now(UTC),
        subject="actor:raz",
        actor_display="Raz",
        suggested_responses=("soft-checkin",),
    )
    person = Agent(id="ana", display="Ana", **({"phone": ANA_PHONE, "whatsapp": ANA_WA} | agent))
    return Invite(
        invitation_id=1,
        channel=channel,
        code="K7QX",
        agent=person,
        signal=signal,
        responses=("soft-checkin",),
        action_url=f"{PUBLIC}/a/x",
    )


@pytest.mark.parametrize(
    ("failure", "expected"),
    [
        (
            {"status": 429, "code": 20429, "retry_after": 7},
            Delivery(False, retryable=True, retry_after=7.0, error="Twilio 429 (error 20429)"),
        ),
        ({"status": 500}, Delivery(False, retryable=True, error="Twilio 500 (error 500)")),
        (
            {"status": 503, "retry_after": 2},
            Delivery(False, retryable=True, retry_after=2.0, error="Twilio 503 (error 503)"),
        ),
        ({"status": 400, "code": 21211}, Delivery(False, error="Twilio 400 (error 21211)", unverified=True)),
        (
            {"status": 400, "code": 21610},
            Delivery(False, error="Twilio 21610: the agent unsubscribed from this sms number", opted_out=True),
        ),
        ({"status": 401, "code": 20003}, Delivery(False, error="Twilio 401 (error 20003)")),
    ],
    ids=["429", "500", "503", "21211", "21610", "401"],
)
async def test_send_errors(fake: FakeTwilio, failure: dict[str, Any], expected: Delivery) -> None:
    """429 (with Retry-After) and 5xx retry; 21610 opts out, 21211 marks the number unverified; other 4xx are permanent."""
    client = sdk.make_client(fake.account_sid, fake.auth_token, fake.base_url)
    try:
        fake.fail_next(**failure)
        delivery = await TwilioChannel("sms", client, sender=SMS_FROM, status_callback=STATUS).send(_invite())
    finally:
        await sdk.close_client(client)
    assert delivery == expected
    assert ANA_PHONE not in (delivery.error or "")


async def test_send_connection_error_and_missing_number(fake: FakeTwilio) -> None:
    """An unreachable Twilio is retried; an agent without a WhatsApp number is a permanent failure."""
    with refused_port() as port:  # not port 9: a machine may run a discard service there
        client = sdk.make_client(fake.account_sid, fake.auth_token, f"http://127.0.0.1:{port}")
        try:
            channel = TwilioChannel("whatsapp", client, sender=WA_FROM, status_callback=STATUS)
            delivery = await channel.send(_invite("whatsapp"))
            assert delivery.retryable and delivery.error and delivery.error.startswith("connection error")
            assert await channel.send(_invite("whatsapp", whatsapp=None)) == Delivery(
                False, error="agent has no whatsapp number in the directory"
            )
            assert await channel.update(_invite("whatsapp"), "SM1", "Ana is here") == Delivery(True, provider_id="SM1")
        finally:
            await sdk.close_client(client)


TWILIO_TABLES = {"inbound_message", "verification_attempt"}


def _table_of(change: Any) -> str | None:
    """The table an Alembic autogenerate change is about (changes may be nested lists)."""
    if isinstance(change, list):
        return _table_of(change[0])
    for part in change[1:]:
        if hasattr(part, "table") and hasattr(part.table, "name"):
            return str(part.table.name)
        if hasattr(part, "name") and hasattr(part, "columns") and hasattr(part, "metadata"):
            return str(part.name)
        if isinstance(part, str) and part in TWILIO_TABLES:
            return part
    return None


async def test_twilio_tables_match_models(database_url: str) -> None:
    """Migration 0002 creates exactly the inbound_message and verification_attempt models."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlmodel import SQLModel

    from inbox import db

    engine = db.create_engine(database_url)
    try:
        await db.upgrade(engine)
        async with engine.connect() as conn:
            diff = await conn.run_sync(lambda c: compare_metadata(MigrationContext.configure(c), SQLModel.metadata))
            tables = await conn.run_sync(lambda c: set(__import__("sqlalchemy").inspect(c).get_table_names()))
    finally:
        await engine.dispose()
    assert tables >= TWILIO_TABLES
    assert [change for change in diff if _table_of(change) in TWILIO_TABLES] == []


@pytest.mark.parametrize("path", ["/hooks/twilio/inbound", "/hooks/twilio/status"])
async def test_unreadable_twilio_requests_get_the_contracts_4xx(
    aiohttp_client: Any, database_url: str, fake: FakeTwilio, path: str
) -> None:
    """An unknown charset is a 400, a body past RELAY_MAX_BODY_BYTES a 413, a sid longer than Twilio's a 400."""
    client = await start(aiohttp_client, database_url, fake, relay_max_body_bytes=4096)
    response = await client.post(
        path,
        data=b"a=b",
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=bogus", "X-Twilio-Signature": "x"},
    )
    assert response.status == 400 and (await response.json())["error"] == "bad_request"
    big = b"Body=" + b"x" * 4096
    response = await client.post(path, data=big, headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status == 413 and (await response.json())["error"] == "payload_too_large"
    make = inbound_sms if path.endswith("inbound") else status_callback
    url = INBOUND if path.endswith("inbound") else STATUS
    extra = {"from_": ANA_PHONE, "to": SMS_FROM, "body": "LIST"} if make is inbound_sms else {"status": "delivered"}
    form, headers = make(DEFAULT_AUTH_TOKEN, url, message_sid="SM" + "a" * 70, **extra)
    response = await client.post(path, data=form, headers=headers)
    assert response.status == 400 and "MessageSid" in (await response.json())["detail"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("7", 7.0),
        ("inf", None),
        ("nan", None),
        ("-3", 0.0),
        ("99999999", 3600.0),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),
        ("soon", None),
    ],
)
def test_twilio_retry_after_is_bounded(value: str, expected: float | None) -> None:
    """A Retry-After Twilio (or a proxy) sends is read as at most an hour; nothing unusable stalls a row."""
    assert sdk.parse_retry_after(value) == expected


@BOTH_DATABASES
async def test_a_number_handed_on_after_removal_answers_for_none_of_the_old_loops(
    aiohttp_client: Any, database_url: str, fake: FakeTwilio
) -> None:
    """Ana is removed and her number given to Bea: LIST shows Bea nothing of Ana's, and DONE with Ana's code closes nothing."""
    client = await start(aiohttp_client, database_url, fake)
    answer = await emit(client)
    await send_all(client)
    code = code_in(fake.messages[-1])
    assert (await client.delete("/admin/agents/ana", headers=ADMIN)).status == 204
    bea = {**ana("sms"), "id": "bea", "display": "Bea"}
    assert (await client.post("/admin/agents", json=bea, headers=ADMIN)).status == 201
    listed = await reply(client, "LIST")
    assert not any(code in text for text in listed)
    await reply(client, f"DONE {code} held-space")
    loop = await loop_of(client, answer)
    assert loop["status"] == "invited" and loop["done"] is None and loop["acks"] == []
