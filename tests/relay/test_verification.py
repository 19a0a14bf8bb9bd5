"""Addresses their owners confirmed (CONTRACT section 8), end to end over SMS and WhatsApp.

The real app with RELAY_VERIFY_ADDRESSES on (the default; other tests turn it off), the
real twilio SDK against FakeTwilio, inbound replies signed with the SDK's RequestValidator.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.conftest import BOTH_DATABASES
from tests.fakes.twilio import FakeTwilio, status_callback
from tests.relay.channels.test_twilio import (
    ADMIN,
    ANA_PHONE,
    ANA_WA,
    FULL_NUMBERS,
    STATUS,
    audit,
    emit,
    loop_of,
    reply,
    rows,
    send_all,
    start,
)
from tests.support import SERVING_ENV, ServerThread, cli, make_settings

JOIN = re.compile(r"Reply JOIN ([A-Z2-9]{4}) to receive gentle invitations here, or STOP to refuse\.")
NEW_PHONE = "+40722000999"


@pytest.fixture
async def fake() -> Any:
    async with FakeTwilio() as server:
        yield server


async def verifying(aiohttp_client: Any, database_url: str, fake: FakeTwilio, *channels: str) -> TestClient:
    """The relay as deployed: addresses must be confirmed; Ana (SMS and WhatsApp numbers) and a grant seeded."""
    return await start(aiohttp_client, database_url, fake, *channels, relay_verify_addresses=True)


def joins(fake: FakeTwilio) -> dict[str, str]:
    """The join code each number was sent, by the address it went to."""
    found = {}
    for message in fake.messages:
        match = JOIN.search(message.get("Body", ""))
        if match:
            found[message["To"]] = match.group(1)
    return found


async def agent(client: TestClient) -> dict[str, Any]:
    return await (await client.get("/admin/agents/ana", headers=ADMIN)).json()


@BOTH_DATABASES
async def test_an_unconfirmed_number_gets_the_join_message_and_no_invitation_until_join(
    aiohttp_client: Any, database_url: str, fake: FakeTwilio
) -> None:
    client = await verifying(aiohttp_client, database_url, fake, "sms")
    assert (await agent(client))["verified"] == {"sms": False, "whatsapp": False}
    await send_all(client)
    # one message per number, with no care data: who added it, the code, STOP
    codes = joins(fake)
    assert set(codes) == {ANA_PHONE, f"whatsapp:{ANA_WA}"} and len(fake.messages) == 2
    for message in fake.messages:
        assert message["Body"].startswith("Hi Ana — an admin added this number to care-relay for care-circle.")
        assert "Raz" not in message["Body"] and "/a/" not in message["Body"]

    answer = await emit(client)
    assert answer["status"] == "unroutable"
    await send_all(client)
    assert len(fake.messages) == 2  # nothing went to the unconfirmed number
    [decision] = [e for e in await audit(client) if e["kind"] == "decision"]
    assert decision["detail"]["skipped"] == [["ana", "unverified"]]

    assert await reply(client, f"join {codes[ANA_PHONE].lower()}") == [
        "Thank you, Ana — gentle invitations can reach you here now. Reply STOP to refuse them."
    ]
    assert (await agent(client))["verified"] == {"sms": True, "whatsapp": False}
    assert (await loop_of(client, answer))["status"] == "unroutable"  # nothing earlier is sent after the fact

    second = await emit(client)
    assert second["status"] == "invited"
    await send_all(client)
    [invitation] = fake.messages[2:]
    assert invitation["To"] == ANA_PHONE and "Raz sent a gentle signal" in invitation["Body"]
    kinds = [e["kind"] for e in await audit(client)]
    assert "address_confirmed" in kinds


async def test_join_takes_only_the_code_that_number_was_sent(
    aiohttp_client: Any, database_url: str, fake: FakeTwilio
) -> None:
    """A wrong code, or the SMS number's code from WhatsApp, confirms nothing; a second JOIN says it is done."""
    client = await verifying(aiohttp_client, database_url, fake, "sms")
    await send_all(client)
    codes = joins(fake)
    wrong = "That code does not match the one sent to this number. Ask your admin to send a new one."
    assert await reply(client, "JOIN ZZZZ") == [wrong]
    assert await reply(client, f"JOIN {codes[ANA_PHONE]}", whatsapp=True) == [wrong]
    assert (await agent(client))["verified"] == {"sms": False, "whatsapp": False}
    assert len(await reply(client, f"JOIN {codes[f'whatsapp:{ANA_WA}']}", whatsapp=True)) == 1
    assert (await agent(client))["verified"] == {"sms": False, "whatsapp": True}
    assert await reply(client, f"JOIN {codes[f'whatsapp:{ANA_WA}']}", whatsapp=True) == [
        "This number is already confirmed — thank you. Reply STOP to refuse invitations here."
    ]


async def test_anything_else_from_an_unconfirmed_number_is_answered_with_how_to_join(
    aiohttp_client: Any, database_url: str, fake: FakeTwilio
) -> None:
    client = await verifying(aiohttp_client, database_url, fake, "sms")
    await send_all(client)
    code = joins(fake)[ANA_PHONE]
    [text] = await reply(client, "LIST")
    assert f"Reply JOIN {code} " in text
    assert await reply(client, "STOP") == []  # STOP still refuses, confirmed or not
    assert (await agent(client))["opted_out"] == ["sms"]


async def test_a_changed_number_is_asked_again_and_the_old_code_no_longer_confirms(
    aiohttp_client: Any, database_url: str, fake: FakeTwilio
) -> None:
    client = await verifying(aiohttp_client, database_url, fake, "sms")
    await send_all(client)
    old = joins(fake)[ANA_PHONE]
    assert len(await reply(client, f"JOIN {old}")) == 1
    assert (await agent(client))["verified"]["sms"] is True

    patched = await client.patch("/admin/agents/ana", json={"phone": NEW_PHONE}, headers=ADMIN)
    assert patched.status == 200
    assert (await patched.json())["verified"] == {"sms": False, "whatsapp": False}
    await send_all(client)
    new = joins(fake)[NEW_PHONE]
    assert await reply(client, f"JOIN {old}", from_=NEW_PHONE) == [
        "That code does not match the one sent to this number. Ask your admin to send a new one."
    ]
    assert len(await reply(client, f"JOIN {new}", from_=NEW_PHONE)) == 1
    assert (await agent(client))["verified"]["sms"] is True


async def test_an_invitation_queued_before_the_number_changed_is_skipped_at_send_time(
    aiohttp_client: Any, database_url: str, fake: FakeTwilio
) -> None:
    client = await verifying(aiohttp_client, database_url, fake, "sms")
    await send_all(client)
    await reply(client, f"JOIN {joins(fake)[ANA_PHONE]}")
    answer = await emit(client)
    assert answer["status"] == "invited"
    assert (await client.patch("/admin/agents/ana", json={"phone": NEW_PHONE}, headers=ADMIN)).status == 200
    sent_before = len(fake.messages)
    await send_all(client)
    assert [m["To"] for m in fake.messages[sent_before:]] == [NEW_PHONE]  # the join message, not the invitation
    assert (await loop_of(client, answer))["invitations"] == [{"agent": "ana", "channel": "sms", "status": "skipped"}]
    assert await rows(client, "SELECT error FROM invitation") == [("unverified",)]


async def test_resend_by_api(aiohttp_client: Any, database_url: str, fake: FakeTwilio) -> None:
    client = await verifying(aiohttp_client, database_url, fake, "sms")
    await send_all(client)
    first = joins(fake)
    response = await client.post("/admin/agents/ana/verify", json={"channel": "sms"}, headers=ADMIN)
    assert response.status == 202
    assert await response.json() == {"id": "ana", "sent": ["sms"], "verified": {"sms": False, "whatsapp": False}}
    await send_all(client)
    assert len(fake.messages) == 3  # the new code went out
    again = joins(fake)[ANA_PHONE]
    # the newest code is the one that confirms (an older one no longer does, unless drawn the same)
    if again != first[ANA_PHONE]:
        assert await reply(client, f"JOIN {first[ANA_PHONE]}") == [
            "That code does not match the one sent to this number. Ask your admin to send a new one."
        ]
    assert len(await reply(client, f"JOIN {again}")) == 1
    refused = await client.post("/admin/agents/ana/verify", json={"channel": "sms"}, headers=ADMIN)
    assert refused.status == 400 and "already confirmed" in (await refused.json())["detail"]
    both = await client.post("/admin/agents/ana/verify", headers=ADMIN)
    assert (await both.json())["sent"] == ["whatsapp"]
    for path, body, status in (
        ("/admin/agents/nobody/verify", {}, 404),
        ("/admin/agents/ana/verify", {"channel": "pigeon"}, 400),
        ("/admin/agents/ana/verify", {"channel": "sms", "extra": 1}, 400),
        ("/admin/agents/ana/verify", [], 400),
    ):
        answer = await client.post(path, json=body, headers=ADMIN)
        assert answer.status == status, (path, body, await answer.text())


async def report(client: TestClient, fake: FakeTwilio, sid: str, status: str, error_code: int | None = None) -> None:
    """Play Twilio's status callback about the message `sid`."""
    form, signature = status_callback(fake.auth_token, STATUS, message_sid=sid, status=status, error_code=error_code)
    assert (await client.post("/hooks/twilio/status", data=form, headers=signature)).status == 200


async def test_a_join_code_whatsapp_reports_undelivered_fails_visibly_and_a_person_can_retry_it(
    aiohttp_client: Any, database_url: str, fake: FakeTwilio
) -> None:
    """63016 reported after the send (outside the 24-hour session) fails the WhatsApp join code's outbox row with
    outside_session, audited and listed by GET /admin/outbox with its agent and channel (the SMS one stays sent);
    once the agent has written, a person's retry sends the code again, and a late report about the old message
    changes nothing."""
    client = await verifying(aiohttp_client, database_url, fake, "sms")
    await send_all(client)
    [first] = [m for m in fake.messages if m["To"] == f"whatsapp:{ANA_WA}"]
    await report(client, fake, first["Sid"], "undelivered", 63016)
    await report(client, fake, first["Sid"], "undelivered", 63016)  # Twilio may say it twice: failed once

    listed = (await (await client.get("/admin/outbox?status=failed", headers=ADMIN)).json())["items"]
    assert [(i["kind"], i["agent"], i["channel"], i["last_error"]) for i in listed] == [
        ("verify", "ana", "whatsapp", "outside_session (Twilio error 63016)")
    ]
    assert sorted(r[0] for r in await rows(client, "SELECT status FROM outbox WHERE kind = 'verify'")) == [
        "failed",
        "sent",
    ]
    [failed] = [a for a in await audit(client) if a["kind"] == "delivery_failed"]
    assert failed["agent"] == "ana" and failed["action_origin"] == "user_directed"
    assert failed["detail"] == {
        "via": "whatsapp",
        "outbox": listed[0]["id"],
        "what": "verify",
        "error": "outside_session (Twilio error 63016)",
    }

    assert await reply(client, "hi", whatsapp=True)  # the agent writes: the session is open
    retried = await client.post(f"/admin/outbox/{listed[0]['id']}/retry?by=ops-ann", headers=ADMIN)
    assert retried.status == 202, await retried.text()
    await send_all(client)
    [_, second] = [m for m in fake.messages if m["To"] == f"whatsapp:{ANA_WA}"]
    assert JOIN.search(second["Body"]) and second["Sid"] != first["Sid"]
    await report(client, fake, first["Sid"], "failed", 63016)  # late, about the message before the retry
    await report(client, fake, second["Sid"], "delivered")
    assert (await (await client.get("/admin/outbox?status=failed", headers=ADMIN)).json())["items"] == []
    assert len(await reply(client, f"JOIN {joins(fake)[f'whatsapp:{ANA_WA}']}", whatsapp=True)) == 1
    assert (await agent(client))["verified"] == {"sms": False, "whatsapp": True}


async def test_with_verification_off_nothing_is_asked_and_invitations_go(
    aiohttp_client: Any, database_url: str, fake: FakeTwilio
) -> None:
    client = await start(aiohttp_client, database_url, fake, "sms", relay_verify_addresses=False)
    await send_all(client)
    assert fake.messages == []
    assert (await emit(client))["status"] == "invited"
    await send_all(client)
    assert [m["To"] for m in fake.messages] == [ANA_PHONE]


async def test_join_messages_keep_numbers_out_of_logs_and_audit(
    aiohttp_client: Any, database_url: str, fake: FakeTwilio, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG", logger="care_relay")
    client = await verifying(aiohttp_client, database_url, fake, "sms")
    await send_all(client)
    await reply(client, f"JOIN {joins(fake)[ANA_PHONE]}")
    text = str(await audit(client)) + caplog.text
    assert not any(number in text for number in FULL_NUMBERS)


async def test_upgrade_counts_addresses_already_invited_as_confirmed(tmp_path: Path) -> None:
    """The upgrade rule: an address that was sent an invitation before counts as confirmed."""
    from alembic import command
    from sqlalchemy import text

    from inbox import db

    url = f"sqlite+aiosqlite:///{tmp_path}/old.db"
    engine = db.create_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(lambda c: command.upgrade(db._alembic_config(c), "0004"))
            await conn.execute(
                text(
                    "INSERT INTO signal (source, event_id, type, subject, status, body_sha256, reason, action_origin,"
                    " origin_uncertain, policy_gate_result, gate_failures, received_at, updated_at) VALUES"
                    " ('m3', 'e1', 'panic.ui', 'actor:raz', 'invited', '', 'r', 'care_autonomous', 0, 'allowed', '[]', 0, 0)"
                )
            )
            for agent_id, phone in (("ana", "+40722000111"), ("bob", "+40722000333")):
                await conn.execute(
                    text(
                        "INSERT INTO agent (id, display, group_ids, slack_user, phone, channels, active, opted_out,"
                        " created_at, updated_at) VALUES (:id, :id, '[]', :slack, :phone, '[]', 1, '[]', 0, 0)"
                    ),
                    {"id": agent_id, "slack": f"U{agent_id.upper()}", "phone": phone},
                )
            # Ana was reached by SMS; Bob's only invitation failed
            await conn.execute(
                text(
                    "INSERT INTO invitation (signal_id, agent_id, channel, code, status, created_at, updated_at)"
                    " VALUES (1, 'ana', 'sms', 'ABCD', 'delivered', 0, 0), (1, 'bob', 'sms', 'EFGH', 'failed', 0, 0)"
                )
            )
        await db.upgrade(engine)
        async with engine.connect() as conn:
            found = dict((await conn.execute(text("SELECT id, verified FROM agent ORDER BY id"))).fetchall())
    finally:
        await engine.dispose()
    assert found == {"ana": '["sms"]', "bob": "[]"}


def test_cli_verify_and_list(tmp_path: Path) -> None:
    """`agent list` shows each address's state; `agent verify` queues a code for the running relay to send,
    whatever the CLI's own environment can send on (here the relay has no Slack: the row shows failed)."""
    settings = make_settings(f"sqlite+aiosqlite:///{tmp_path}/relay.db", relay_verify_addresses=True)
    with ServerThread(settings) as server:
        env = {**SERVING_ENV, "RELAY_DATABASE_URL": settings.relay_database_url, "RELAY_VERIFY_ADDRESSES": "true"}
        cli(env, tmp_path, "agent", "add", "bob", "--display", "Bob", "--slack-user", "U0BOB", "--group", "g")
        table = cli(env, tmp_path, "agent", "list")
        assert "slack no" in table
        assert "join code sent to bob on slack" in cli(env, tmp_path, "agent", "verify", "bob", "--channel", "slack")
        assert server.sql("SELECT COUNT(*) FROM outbox WHERE kind = 'verify'") == [(2,)]
        off = {**env, "RELAY_VERIFY_ADDRESSES": "false"}
        error = cli(off, tmp_path, "agent", "verify", "bob", "--channel", "slack", ok=False)
        assert "RELAY_VERIFY_ADDRESSES is off" in error and len(error.strip().splitlines()) == 1
        assert "nothing to send" in cli(off, tmp_path, "agent", "verify", "bob")
