"""One golden path in two languages, through the real Slack and Twilio SDKs against their fakes.

A circle of four: Ana (ro, Slack), Ioana (ro, SMS), Bo (en, Slack), Cy (en, SMS). One
panic.ui from Raz: each reads the invitation in their own language, with labels rather
than slugs, in Slack, by SMS and on the link page; an SMS answer by label is thanked in
Romanian, and the recorded action stays the slug.
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp.test_utils import TestClient

from relay.app import create_app
from relay.keys import OUTBOX
from tests.fakes.slack import DEFAULT_TOKEN, FakeSlack
from tests.fakes.twilio import FakeTwilio
from tests.support import ADMIN_TOKEN, fixture, fresh, make_settings, signed

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
PUBLIC = "https://relay.example"
SMS_FROM = "+15005550006"
CIRCLE = [
    {"id": "ana", "display": "Ana", "locale": "ro", "slack_user": "U0ANA", "channels": ["slack"]},
    {"id": "ioana", "display": "Ioana", "locale": "ro", "phone": "+40722000111", "channels": ["sms"]},
    {"id": "bo", "display": "Bo", "locale": "en", "slack_user": "U0BO", "channels": ["slack"]},
    {"id": "cy", "display": "Cy", "phone": "+40722000333", "channels": ["sms"]},  # RELAY_DEFAULT_LOCALE: en
]


async def relay(aiohttp_client: Any, database_url: str, slack: FakeSlack, twilio: FakeTwilio) -> TestClient:
    """The real app on the fake Slack and the fake Twilio; the outbox driven by hand."""
    settings = make_settings(
        database_url,
        slack_bot_token=DEFAULT_TOKEN,
        slack_signing_secret="slack-signing-secret-for-tests",
        slack_api_url=slack.api_url,
        twilio_account_sid=twilio.account_sid,
        twilio_auth_token=twilio.auth_token,
        twilio_sms_from=SMS_FROM,
        twilio_api_base_url=twilio.base_url,
        relay_public_base_url=PUBLIC,
    )
    client: TestClient = await aiohttp_client(create_app(settings, run_outbox=False))
    return client


async def test_each_agent_reads_the_invitation_in_their_own_language(
    aiohttp_client: Any, database_url: str, slack: FakeSlack, twilio: FakeTwilio
) -> None:
    client = await relay(aiohttp_client, database_url, slack, twilio)
    for agent in CIRCLE:
        assert (
            await client.post("/admin/agents", json=agent | {"groups": ["care-circle"]}, headers=ADMIN)
        ).status == 201
    grant = {"subject": "actor:raz", "scope": ["panic.ui"], "groups": ["care-circle"], "by": "admin"}
    assert (await client.post("/admin/consents", json=grant, headers=ADMIN)).status == 201
    body, headers = signed("m3", fresh("m3", fixture("m3", "panic.ui__golden")))
    answer = await (await client.post("/hooks/m3", data=body, headers=headers)).json()
    assert answer["status"] == "invited"
    await client.app[OUTBOX].drain()

    dms = {channel: message for (channel, _ts), message in slack.messages.items()}
    ana, bo = dms["DU0ANA"], dms["DU0BO"]
    buttons = {user: [e["text"]["text"] for b in m["blocks"] if b["type"] == "actions" for e in b["elements"]]
               for user, m in (("ana", ana), ("bo", bo))}  # fmt: skip
    assert "a trimis un semnal blând" in ana["text"] and "sent a gentle signal" in bo["text"]
    assert "Întreabă blând ce face" in buttons["ana"] and "Stai alături" in buttons["ana"]
    assert "Check in gently" in buttons["bo"] and "Hold space" in buttons["bo"]
    assert not any("soft-checkin" in label for labels in buttons.values() for label in labels)

    texts = {m["To"]: m["Body"] for m in twilio.messages}
    ioana, cy = texts["+40722000111"], texts["+40722000333"]
    assert "a trimis un semnal blând" in ioana and "pentru Întreabă blând ce face" in ioana
    assert "sent a gentle signal" in cy and "for Check in gently" in cy
    assert "soft-checkin" not in ioana + cy

    link = re.search(r"(https://relay\.example/a/\S+)", ioana)
    assert link is not None
    page = await client.get(link.group(1).removeprefix(PUBLIC))
    assert page.status == 200
    html = await page.text()
    assert 'lang="ro"' in html and "Întreabă blând ce face" in html

    code = re.search(r"Răspunde ([A-Z2-9]{4}) 1", ioana)
    assert code is not None
    form, signature = twilio.inbound(
        f"{PUBLIC}/hooks/twilio/inbound", from_="+40722000111", to=SMS_FROM, body=f"{code.group(1)} Stai alături"
    )
    reply = await client.post("/hooks/twilio/inbound", data=form, headers=signature)
    assert reply.status == 200 and "Mulțumim, Ioana" in await reply.text()
    loop = await (await client.get(answer["status_url"])).json()
    assert [(a["by"]["id"], a["action"]) for a in loop["acks"]] == [("ioana", "hold-space")]


async def test_a_status_set_shows_its_status_and_note_in_slack_by_sms_and_on_the_page(
    aiohttp_client: Any, database_url: str, slack: FakeSlack, twilio: FakeTwilio
) -> None:
    """For status.set, context.status and context.note are the message: every channel shows them."""
    client = await relay(aiohttp_client, database_url, slack, twilio)
    for agent in (CIRCLE[0], CIRCLE[3]):
        assert (
            await client.post("/admin/agents", json=agent | {"groups": ["care-circle"]}, headers=ADMIN)
        ).status == 201
    grant = {"subject": "actor:raz", "scope": ["status.set"], "groups": ["care-circle"], "by": "admin"}
    assert (await client.post("/admin/consents", json=grant, headers=ADMIN)).status == 201
    body, headers = signed("m3", fresh("m3", fixture("m3", "status.set__golden")))
    assert (await (await client.post("/hooks/m3", data=body, headers=headers)).json())["status"] == "invited"
    await client.app[OUTBOX].drain()

    [dm] = slack.messages.values()
    assert "yellow" in str(dm["blocks"]) and "low energy" in str(dm["blocks"])
    [sms] = twilio.messages
    assert '"yellow"' in sms["Body"] and '"low energy"' in sms["Body"]
    link = re.search(r"(https://relay\.example/a/\S+)", sms["Body"])
    assert link is not None
    page = await (await client.get(link.group(1).removeprefix(PUBLIC))).text()
    assert "yellow" in page and "low energy" in page
