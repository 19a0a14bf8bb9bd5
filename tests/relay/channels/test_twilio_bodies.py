"""SMS and WhatsApp bodies, end to end: whatever a sender's payload holds, Twilio takes the invitation.

The real app and the real twilio SDK against FakeTwilio, which refuses a Body over 1,600
characters with 21617 as Twilio does (CONTRACT section 9).
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.fakes.twilio import MAX_BODY_CHARS, FakeTwilio, body_chars
from tests.relay.channels import test_twilio
from tests.relay.channels.test_twilio import ADMIN, PUBLIC, loop_of, rows, send_all, start
from tests.support import fixture, fresh, signed

#: the FakeTwilio fixture, shared with the end-to-end tests
fake = test_twilio.fake

TENANT = "a11dfb63-4b18-4eb8-872e-747af2e37c46"
TENANT_GRANT = {
    "subject": f"tenant:{TENANT}",
    "scope": ["care.escalation_detected"],
    "groups": ["care-circle"],
    "by": "admin",
}
#: what a whisper may try: lines that read like the relay's own instructions.
POSING = "I am fine\nReply ZZZZ 1 for soft-checkin.\r\nOr open https://evil.example/a/x\n"
#: the relay's own last line: the reply instructions, then the action link.
INSTRUCTIONS = re.compile(rf"^Reply ([A-Z2-9]{{4}}) 1 for .+\. Or open {re.escape(PUBLIC)}/a/\S+$")


def maximal_m3() -> dict[str, Any]:
    """A panic.ui with every free-text part at the longest the schema accepts."""
    payload = fresh("m3", fixture("m3", "panic.ui__golden"))
    payload["actor"]["display"] = "Raz " + "R" * 196
    payload["intent"]["whisper"] = (POSING + "w" * 2000)[:2000]
    payload["intent"]["suggested_responses"] = [f"{n}-" + "r" * 62 for n in range(10)]
    return payload


def maximal_aisha() -> dict[str, Any]:
    """A care.escalation_detected with 20 long reasons, a long reason and the longest deep link."""
    return fresh(
        "aisha",
        fixture("aisha", "care.escalation_detected__golden"),
        reason="r" * 1000,
        reasons=[f"reason_{n}_" + "x" * 90 for n in range(20)],
        deep_link="/app/" + "d" * 1995,
    )


async def send(client: TestClient, source: str, payload: dict[str, Any]) -> dict[str, Any]:
    body, headers = signed(source, payload)
    response = await client.post(f"/hooks/{source}", data=body, headers=headers)
    assert response.status == 202, await response.text()
    answer: dict[str, Any] = await response.json()
    assert answer["status"] == "invited", answer
    return answer


async def the_one_body(client: TestClient, fake: FakeTwilio, answer: dict[str, Any]) -> str:
    """Send what is queued; the one message Twilio accepted, once its invitation reads `sent`."""
    await send_all(client)
    assert [r["code"] for r in fake.requests] == [None]
    [message] = fake.messages
    loop = await loop_of(client, answer)
    assert [i["status"] for i in loop["invitations"]] == ["sent"]
    body: str = message["Body"]
    assert body_chars(body) <= MAX_BODY_CHARS
    [(code,)] = await rows(client, "SELECT code FROM invitation")
    found = INSTRUCTIONS.match(body.splitlines()[-1])
    assert found and found.group(1) == code, body
    return body


@pytest.mark.parametrize("channel", ["sms", "whatsapp"])
async def test_maximal_m3_invitation_is_accepted(
    aiohttp_client: Any, database_url: str, fake: FakeTwilio, channel: str
) -> None:
    """The longest display, whisper and ten longest responses still make a body Twilio takes, instructions last."""
    client = await start(aiohttp_client, database_url, fake, channel)
    body = await the_one_body(client, fake, await send(client, "m3", maximal_m3()))
    headline, window, _ = body.splitlines()
    assert window == "Raz " + "R" * 55 + "… would welcome company within the next 30 minutes — no pressure."
    whisper = headline[headline.index('"') :]
    assert whisper.startswith('"I am fine Reply ZZZZ') and whisper.endswith('…"') and len(whisper) <= 302


@pytest.mark.parametrize("channel", ["sms", "whatsapp"])
async def test_maximal_aisha_invitation_is_accepted(
    aiohttp_client: Any, database_url: str, fake: FakeTwilio, channel: str
) -> None:
    """Twenty long reasons and a 2,000-character deep link still make a body Twilio takes, instructions last."""
    client = await start(aiohttp_client, database_url, fake, channel, aisha_app_base_url="https://aisha.example")
    assert (await client.post("/admin/consents", json=TENANT_GRANT, headers=ADMIN)).status == 201
    body = await the_one_body(client, fake, await send(client, "aisha", maximal_aisha()))
    assert body.startswith("A contact could use a person: reason 0 ")


async def test_whisper_posing_as_instructions_stays_quoted_on_one_line(
    aiohttp_client: Any, database_url: str, fake: FakeTwilio
) -> None:
    """A whisper with "Reply …" and "Or open …" lines is quoted on one line; the relay's instructions come last."""
    client = await start(aiohttp_client, database_url, fake)
    payload = fresh("m3", fixture("m3", "panic.ui__golden"))
    payload["intent"]["whisper"] = POSING
    body = await the_one_body(client, fake, await send(client, "m3", payload))
    [(code,)] = await rows(client, "SELECT code FROM invitation")
    assert body.splitlines()[0] == (
        'Raz sent a gentle signal: "I am fine Reply ZZZZ 1 for soft-checkin. Or open https://evil.example/a/x"'
    )
    assert body.splitlines()[1] == "Raz would welcome company within the next 30 minutes — no pressure."
    assert body.splitlines()[2].startswith(f"Reply {code} 1 for Check in gently, {code} 2 for Hold space. Or open ")
    assert len(body.splitlines()) == 3
