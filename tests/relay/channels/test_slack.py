"""Slack end to end over real HTTP: the relay's SDK client talks to FakeSlack, Slack's
signed requests come in on /slack/events, callbacks go to a local sink.

Nothing is monkeypatched and Slack's signature check stays on. The outbox is driven by
hand (`run_outbox=False` + `drain()`), so every step is deterministic.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from inbox import outbox as rows
from inbox.tx import now_ms
from receivers.m3 import signature as m3_signature
from relay.app import create_app
from relay.channels.slack import _json_text
from relay.channels.slack import flow as slack
from relay.channels.slack.send import CALL_TIMEOUT_SEC, SlackChannel
from relay.keys import CHANNELS, OUTBOX, WRITER
from relay.outbox import FRESH_SEC, LANE_CONCURRENCY
from tests.conftest import BOTH_DATABASES, Clock
from tests.fakes.slack import (
    DEFAULT_TOKEN,
    FakeSlack,
    block_action,
    sign,
    slash_command,
    static_select,
    view_submission,
)
from tests.support import ADMIN_TOKEN, M3_SECRETS, fixture, fresh, make_settings, query, signed

SECRET = "slack-signing-secret-for-tests"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
TENANT = "a11dfb63-4b18-4eb8-872e-747af2e37c46"
ANA, BO, CY, STRANGER = "U0ANA", "U0BO", "U0CY", "U0STRANGER"
AGENTS = {
    "ana": {"id": "ana", "display": "Ana", "groups": ["care-circle"], "slack_user": ANA, "channels": ["slack"]},
    "bo": {"id": "bo", "display": "Bo", "groups": ["care-circle"], "slack_user": BO, "channels": ["slack"]},
    "cy": {"id": "cy", "display": "Cy", "groups": ["other-circle"], "slack_user": CY, "channels": ["slack"]},
}
GRANT = {"subject": "actor:raz", "scope": ["panic.ui", "status.set"], "groups": ["care-circle"], "by": "admin"}
WHISPER = "Sunt aici. Nu e urgență. Aș vrea însoțire."


@dataclass
class Sink:
    """A sender's callback endpoint: records every POST (headers, raw body)."""

    url: str = ""
    got: list[tuple[dict[str, str], bytes]] = field(default_factory=list)

    def verified(self) -> list[dict[str, Any]]:
        """Bodies whose X-M3 signature verifies with the M3 callback secret (the first M3 secret)."""
        out = []
        for headers, body in self.got:
            m3_signature.verify(headers, body, [M3_SECRETS[0]], now=int(time.time()), max_window_sec=300)
            parsed = json.loads(body)
            assert headers["X-M3-Event"] == parsed["type"]
            out.append(parsed)
        return out


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as server:
        yield server


@pytest.fixture
async def sink(aiohttp_server: Any) -> Sink:
    recorder = Sink()

    async def receive(request: web.Request) -> web.Response:
        recorder.got.append((dict(request.headers), await request.read()))
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/m3/callbacks", receive)
    server = await aiohttp_server(app)
    recorder.url = str(server.make_url("/m3/callbacks"))
    return recorder


Start = Callable[..., Awaitable[TestClient]]


@pytest.fixture
def start(aiohttp_client: Any, database_url: str, fake: FakeSlack, sink: Sink, clock: Clock) -> Start:
    """The real app on FakeSlack and the test's clock, outbox driven by hand; agents (default: all) and grant
    seeded via admin API."""

    async def started(*agents: str, **settings: Any) -> TestClient:
        app = create_app(
            make_settings(
                database_url,
                slack_bot_token=DEFAULT_TOKEN,
                slack_signing_secret=SECRET,
                slack_api_url=fake.api_url,
                m3_callback_url=sink.url,
                **settings,
            ),
            clock=clock,
            run_outbox=False,
        )
        client: TestClient = await aiohttp_client(app)
        for agent in agents or ("ana", "bo", "cy"):
            assert (await client.post("/admin/agents", json=AGENTS[agent], headers=ADMIN)).status == 201
        assert (await client.post("/admin/consents", json=GRANT, headers=ADMIN)).status == 201
        return client

    return started


async def signal(client: TestClient, source: str = "m3", payload: dict[str, Any] | None = None) -> dict[str, Any]:
    payload = payload or fresh("m3", fixture("m3", "panic.ui__golden"))
    body, headers = signed(source, payload)
    response = await client.post(f"/hooks/{source}", data=body, headers=headers)
    assert response.status == 202, await response.text()
    return await response.json()


async def loop(client: TestClient, answer: dict[str, Any]) -> dict[str, Any]:
    return await (await client.get(answer["status_url"])).json()


async def drain(client: TestClient) -> None:
    await client.app[OUTBOX].drain()


async def outbox(client: TestClient) -> list[dict[str, Any]]:
    return await client.app[WRITER].run(rows.rows)


async def make_due(client: TestClient) -> None:
    """Bring pending retries forward to now (the backoff itself is left as it is)."""
    await client.app[WRITER].run(
        lambda tx: tx.execute("UPDATE outbox SET next_attempt_at = ? WHERE status = 'pending'", (now_ms(),))
    )


async def audit(client: TestClient) -> list[dict[str, Any]]:
    return (await (await client.get("/admin/audit?limit=200", headers=ADMIN)).json())["items"]


def dm(fake: FakeSlack, user: str) -> dict[str, Any]:
    """The invitation posted to this user's DM (the last successful post)."""
    return [m for (channel, _ts), m in fake.messages.items() if channel == "D" + user][-1]


def elements(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for b in blocks if b["type"] == "actions" for e in b["elements"]]


def invitation_of(fake: FakeSlack, user: str) -> int:
    close = [e for e in elements(dm(fake, user)["blocks"]) if e["action_id"] == "care_done"]
    return int(close[0]["value"])


async def press(client: TestClient, user: str, action_id: str, value: str, **kwargs: Any) -> Any:
    body, headers = block_action(SECRET, user_id=user, action_id=action_id, value=value, **kwargs)
    return await client.post("/slack/events", data=body, headers=headers)


async def submit(client: TestClient, user: str, invitation: int, outcome: str | None, note: str | None = None) -> Any:
    values = {"outcome": {"outcome": static_select(outcome)}, "note": {"note": note}}
    body, headers = view_submission(
        SECRET, user_id=user, callback_id="care_done_modal", private_metadata=str(invitation), values=values
    )
    return await client.post("/slack/events", data=body, headers=headers)


def ephemerals(fake: FakeSlack, user: str) -> list[str]:
    return [p["text"] for p in fake.calls_to("chat.postEphemeral") if p["user"] == user]


async def invited(start: Start, fake: FakeSlack) -> tuple[TestClient, dict[str, Any], int]:
    """A signal for Ana and Bo, their DMs sent: the client, the 202 answer and Ana's invitation id."""
    client = await start()
    answer = await signal(client)
    await drain(client)
    await fake.wait_for("chat.postMessage", count=2)
    return client, answer, invitation_of(fake, ANA)


@BOTH_DATABASES
async def test_golden_path(start: Start, fake: FakeSlack, sink: Sink) -> None:  # noqa: PLR0915 - one story, end to end
    """panic.ui → DMs with buttons → a press acks, updates every DM, calls back → the modal closes the loop, once."""
    client = await start()
    answer = await signal(client)
    assert answer["status"] == "invited"
    await drain(client)
    await fake.wait_for("chat.postMessage", count=2)
    assert sorted(p["users"] for p in fake.calls_to("conversations.open")) == [ANA, BO]
    posted = dm(fake, ANA)
    headline = posted["blocks"][0]["text"]
    assert headline["type"] == "plain_text" and headline["text"] == f'Raz sent a gentle signal: "{WHISPER}"'
    buttons = elements(posted["blocks"])
    invitation = invitation_of(fake, ANA)
    assert [(b["action_id"], b["text"]["text"], b["value"]) for b in buttons] == [
        ("care_ack_1", "Check in gently", f"{invitation}:1"),
        ("care_ack_2", "Hold space", f"{invitation}:2"),
        ("care_done", "Close the loop", str(invitation)),
        ("care_pass", "Not now", str(invitation)),
        ("care_ask", "Ask someone else", str(invitation)),
    ]
    shown = json.dumps(posted["blocks"], ensure_ascii=False)
    assert "How would you like to be there for Raz?" in shown
    assert "Raz would welcome company within the next 30 minutes — no pressure." in shown
    state = await loop(client, answer)
    assert sorted((i["agent"], i["status"]) for i in state["invitations"]) == [("ana", "sent"), ("bo", "sent")]

    started = time.perf_counter()
    response = await press(client, ANA, "care_ack_1", f"{invitation}:1")
    elapsed = time.perf_counter() - started
    assert response.status == 200 and elapsed < 3.0  # Slack's limit for the HTTP answer
    state = await loop(client, answer)
    assert state["status"] == "acked"
    assert [{k: a[k] for k in ("type", "for", "by", "action")} for a in state["acks"]] == [
        {"type": "care.ack", "for": answer["id"], "by": {"id": "ana", "display": "Ana"}, "action": "soft-checkin"}
    ]
    assert state["acks"][0]["ts"].endswith("Z") and ephemerals(fake, ANA) == []

    await drain(client)
    updates = await fake.wait_for("chat.update", count=2)
    assert sorted(u["channel"] for u in updates) == ["D" + ANA, "D" + BO]
    for user in (ANA, BO):
        message = dm(fake, user)
        assert message["blocks"][0]["text"]["text"] == headline["text"]
        assert [e["text"] for b in message["blocks"] if b["type"] == "context" for e in b["elements"]] == [
            "Ana is here — Check in gently"
        ]
        assert [e["action_id"] for e in elements(message["blocks"])] == ["care_done", "care_ask"]
    (ack,) = sink.verified()
    assert ack["type"] == "care.ack" and ack["for"] == answer["id"] and ack["action"] == "soft-checkin"
    assert ack["by"] == {"id": "ana", "display": "Ana"} and ack["id"].startswith("ack_")

    assert (await press(client, ANA, "care_done", str(invitation))).status == 200
    (opened,) = await fake.wait_for("views.open")
    modal = opened["view"]
    assert modal["callback_id"] == "care_done_modal" and modal["private_metadata"] == str(invitation)
    options = [o["value"] for o in modal["blocks"][1]["element"]["options"]]
    assert options[:2] == ["held-space", "talked"] and "soft-checkin" in options

    unpicked = await (await submit(client, ANA, invitation, None)).json()
    assert unpicked == {"response_action": "errors", "errors": {"outcome": "Pick how it ended."}}
    assert (await loop(client, answer))["status"] == "acked"
    response = await submit(client, ANA, invitation, "held-space", "We sat together for a while.")
    assert response.status == 200 and await response.text() == ""  # an empty ack closes the modal
    state = await loop(client, answer)
    assert state["status"] == "done"
    done = state["done"]
    assert {k: done[k] for k in ("type", "for", "by", "outcome", "note")} == {
        "type": "care.done",
        "for": answer["id"],
        "by": {"id": "ana", "display": "Ana"},
        "outcome": "held-space",
        "note": "We sat together for a while.",
    }

    await drain(client)
    await fake.wait_for("chat.update", count=4)
    for user in (ANA, BO):
        message = dm(fake, user)
        assert elements(message["blocks"]) == []  # no buttons once done
        notes = [e["text"] for b in message["blocks"] if b["type"] == "context" for e in b["elements"]]
        assert notes == ["Ana closed the loop — I held space"]
    ack, closed = sink.verified()
    assert closed["type"] == "care.done" and closed["for"] == answer["id"] and closed["id"].startswith("done_")
    assert (closed["outcome"], closed["note"]) == ("held-space", "We sat together for a while.")
    assert closed["by"] == {"id": "ana", "display": "Ana"}

    response = await press(client, ANA, "care_done", str(invitation))
    assert response.status == 200 and ephemerals(fake, ANA) == [slack.ALREADY_DONE]
    assert len(fake.calls_to("views.open")) == 1


async def test_strangers_are_refused_and_change_nothing(start: Start, fake: FakeSlack, sink: Sink) -> None:
    """A Slack user outside the directory, an agent not invited, or another invitee's button: a kind refusal, no ack."""
    client, answer, invitation = await invited(start, fake)

    for user in (STRANGER, CY, BO):  # BO holds his own invitation, not this one
        assert (await press(client, user, "care_ack_1", f"{invitation}:1")).status == 200
        assert (await press(client, user, "care_done", str(invitation))).status == 200
        response = await submit(client, user, invitation, "held-space")
        assert response.status == 200
        assert slack.REFUSED in json.dumps(await response.json(), ensure_ascii=False)
        assert ephemerals(fake, user) == [slack.REFUSED, slack.REFUSED]
    assert (await press(client, ANA, "care_ack_9", f"{invitation}:9")).status == 200  # not offered
    assert (await press(client, STRANGER, "care_ack_1", "not-an-id")).status == 200

    state = await loop(client, answer)
    assert state["status"] == "invited" and state["acks"] == [] and state["done"] is None
    assert fake.calls_to("views.open") == []
    await drain(client)
    assert fake.calls_to("chat.update") == [] and sink.got == []
    refusals = [a for a in await audit(client) if a["kind"] == "refusal"]
    assert len(refusals) == 10 and {a["detail"]["via"] for a in refusals} == {"slack"}
    assert {a["agent"] for a in refusals} == {None, "cy", "bo"}


async def test_simultaneous_answers(start: Start, fake: FakeSlack, sink: Sink) -> None:
    """Two agents pressing at once both ack; two simultaneous closes record one done, the other hears it is closed."""
    client = await start()
    answer = await signal(client)
    await drain(client)
    await fake.wait_for("chat.postMessage", count=2)
    ana, bo = invitation_of(fake, ANA), invitation_of(fake, BO)

    pressed = await asyncio.gather(
        press(client, ANA, "care_ack_1", f"{ana}:1"), press(client, BO, "care_ack_2", f"{bo}:2")
    )
    assert [r.status for r in pressed] == [200, 200]
    state = await loop(client, answer)
    assert state["status"] == "acked"
    acks = sorted((a["by"]["id"], a["action"]) for a in state["acks"])
    assert acks == [("ana", "soft-checkin"), ("bo", "hold-space")]
    await drain(client)
    await fake.wait_for("chat.update", count=4)
    for user in (ANA, BO):
        notes = {e["text"] for b in dm(fake, user)["blocks"] if b["type"] == "context" for e in b["elements"]}
        assert notes == {"Ana is here — Check in gently", "Bo is here — Hold space"}

    closed = await asyncio.gather(submit(client, ANA, ana, "talked"), submit(client, BO, bo, "held-space", "ok"))
    bodies = [await r.text() for r in closed]
    assert [r.status for r in closed] == [200, 200]
    assert sorted(bool(b) for b in bodies) == [False, True]  # one closed its modal, one was told
    told = json.loads(next(b for b in bodies if b))
    assert told["response_action"] == "update" and told["view"]["blocks"][0]["text"]["text"] == slack.ALREADY_DONE
    state = await loop(client, answer)
    assert state["status"] == "done" and state["done"]["by"]["id"] in ("ana", "bo")
    await drain(client)
    assert [b["type"] for b in sink.verified()].count("care.done") == 1


@pytest.mark.parametrize("failure", ["http_500", "http_429", "timeout", "open_503"])
async def test_transient_failures_are_retried(start: Start, fake: FakeSlack, failure: str) -> None:
    """Slack 5xx, 429 (Retry-After honoured) and a timeout leave the invitation queued; the retry sends it."""
    client = await start("ana")
    if failure == "http_500":
        fake.fail_next("chat.postMessage", status=500)
    elif failure == "http_429":
        fake.fail_next("chat.postMessage", status=429, retry_after=30)
    elif failure == "open_503":
        fake.fail_next("conversations.open", status=503)
    else:
        channel = client.app[CHANNELS]["slack"]
        assert isinstance(channel, SlackChannel)
        client.app[CHANNELS]["slack"] = SlackChannel(channel.client, timeout=0.3)
        # answered when the fake stops: only the 0.3 s given can end the call in time
        fake.fail_next("chat.postMessage", delay=600)
    answer = await signal(client)
    started = time.monotonic()
    await drain(client)
    # nothing waited for Retry-After (30 s), for Slack's answer, or for the channel's own default timeout
    assert time.monotonic() - started < CALL_TIMEOUT_SEC
    (row,) = await outbox(client)
    expected = {
        "http_500": "slack HTTP 500",
        "http_429": "slack ratelimited",
        "timeout": "slack timed out",
        "open_503": "slack HTTP 503",
    }[failure]
    assert (row["kind"], row["status"], row["attempts"], row["last_error"]) == ("invite", "pending", 1, expected)
    assert (await loop(client, answer))["invitations"][0]["status"] == "queued"
    # the wait as decided when the failure was settled (not as left by the time this line runs)
    due, settled = await client.app[WRITER].run(
        lambda tx: tx.execute("SELECT next_attempt_at, updated_at FROM outbox").fetchone()
    )
    wait = (int(due) - int(settled)) / 1000
    assert wait == 30 if failure == "http_429" else 0.8 <= wait <= 1.2  # Retry-After, or backoff(1): 1 s ± 20 %

    await make_due(client)
    await drain(client)
    (row,) = await outbox(client)
    assert (row["status"], row["attempts"]) == ("sent", 2)
    assert (await loop(client, answer))["invitations"][0]["status"] == "sent"
    assert len(fake.calls_to("chat.postMessage")) == 2 - (failure == "open_503")


@pytest.mark.parametrize("failure", ["user_not_found", "account_inactive", "invalid_auth", "no_slack_user"])
async def test_permanent_failures_end_failed_after_one_attempt(start: Start, fake: FakeSlack, failure: str) -> None:
    """Slack's ok:false errors (and an agent without a Slack user) fail the invitation at once, visibly in the inbox."""
    client = await start("ana")
    answer = await signal(client)
    if failure == "user_not_found":
        fake.unknown_users.add(ANA)
    elif failure == "no_slack_user":
        response = await client.patch("/admin/agents/ana", json={"slack_user": None}, headers=ADMIN)
        assert response.status == 200 and (await response.json())["slack_user"] is None
    else:
        fake.fail_next("chat.postMessage", error=failure)
    await drain(client)
    error = "agent has no slack_user" if failure == "no_slack_user" else f"slack {failure}"
    (row,) = await outbox(client)
    assert (row["status"], row["attempts"], row["last_error"]) == ("failed", 1, error)
    inbox = (await (await client.get("/admin/inbox", headers=ADMIN)).json())["items"]
    assert inbox[0]["id"] == answer["id"]
    assert inbox[0]["invitations"] == [{"agent": "ana", "channel": "slack", "status": "failed", "error": error}]
    assert (await loop(client, answer))["invitations"][0]["status"] == "failed"
    await make_due(client)
    await drain(client)
    calls = len(fake.calls_to("conversations.open")) + len(fake.calls_to("chat.postMessage"))
    assert calls == {"user_not_found": 1, "no_slack_user": 0}.get(failure, 2)  # one attempt, never a second
    assert fake.messages == {}


async def test_an_error_that_is_not_a_slack_code_is_kept_as_the_http_status(start: Start, fake: FakeSlack) -> None:
    """`last_error` is shown by /admin/outbox: an endpoint's `error` that is not a code (it could quote a
    person's words or number) is kept only as the HTTP status."""
    client = await start("ana")
    await signal(client)
    fake.fail_next("chat.postMessage", error="cannot reach +40722000111: 'Sunt aici'")
    await drain(client)
    (row,) = await outbox(client)
    assert (row["status"], row["last_error"]) == ("failed", "slack HTTP 200")


@pytest.mark.parametrize("tamper", ["wrong_secret", "stale", "unsigned"])
async def test_bad_slack_signature_is_401_and_records_nothing(
    start: Start, fake: FakeSlack, sink: Sink, tamper: str
) -> None:
    """A request Slack did not sign (or signed too long ago) is 401 and changes nothing."""
    client, answer, invitation = await invited(start, fake)
    audit_before = await audit(client)
    fake.clear()
    secret = "not-the-signing-secret" if tamper == "wrong_secret" else SECRET
    stamp = int(time.time()) - 600 if tamper == "stale" else None
    body, headers = block_action(secret, user_id=ANA, action_id="care_ack_1", value=f"{invitation}:1", timestamp=stamp)
    if tamper == "unsigned":
        headers = {k: v for k, v in headers.items() if k != "X-Slack-Signature"}
    response = await client.post("/slack/events", data=body, headers=headers)
    assert response.status == 401
    state = await loop(client, answer)
    assert state["status"] == "invited" and state["acks"] == []
    assert await audit(client) == audit_before
    await drain(client)
    assert fake.calls == [] and sink.got == []


async def test_a_dead_workers_rows_are_sent_once_by_the_next(start: Start, fake: FakeSlack) -> None:
    """Rows claimed by a worker that died mid-send wait out their lease; the next worker sends each exactly once."""
    client = await start()
    answer = await signal(client)
    writer = client.app[WRITER]
    claimed = await writer.run(lambda tx: rows.claim(tx, now=now_ms(), lease_ms=60_000, limit=10, kinds=("invite",)))
    assert len(claimed) == 2  # ... and this "worker" dies here, settling nothing

    await drain(client)
    assert fake.calls_to("chat.postMessage") == []  # the lease still holds
    lapse = "UPDATE outbox SET lease_until = ? WHERE status = 'sending'"
    await writer.run(lambda tx: tx.execute(lapse, (now_ms() - 1,)))
    await drain(client)
    await drain(client)
    assert sorted(p["channel"] for p in fake.calls_to("chat.postMessage")) == ["D" + ANA, "D" + BO]
    assert [(r["status"], r["attempts"]) for r in await outbox(client)] == [("sent", 2), ("sent", 2)]
    assert {i["status"] for i in (await loop(client, answer))["invitations"]} == {"sent"}


async def test_care_command_lists_only_your_open_invitations(start: Start, fake: FakeSlack) -> None:
    """`/care` shows an agent their own open loops; others see nothing of them; a stranger is kindly refused."""
    client = await start()
    await signal(client)

    async def care(user: str) -> str:
        body, headers = slash_command(SECRET, user_id=user)
        response = await client.post("/slack/events", data=body, headers=headers)
        assert response.status == 200
        answer = await response.json()
        assert answer["response_type"] == "ephemeral"
        return str(answer["text"])

    listed = await care(ANA)
    assert listed.startswith("Your open invitations:") and "Raz sent a gentle signal" in listed
    assert WHISPER in listed and "waiting for someone" in listed
    assert await care(CY) == "Nothing is waiting for you right now."
    assert await care(STRANGER) == slack.NOT_AN_AGENT
    await drain(client)
    invitation = invitation_of(fake, ANA)
    await press(client, ANA, "care_ack_1", f"{invitation}:1")
    assert "someone is there" in await care(BO)
    await submit(client, ANA, invitation, "talked")
    assert await care(ANA) == await care(BO) == "Nothing is waiting for you right now."


async def test_aisha_invitation_words_reasons_and_links(start: Start, fake: FakeSlack) -> None:
    """An AiSHA escalation's DM gives the reasons in plain words, the deep link as a link button, and on-it's label."""
    client = await start("ana", aisha_app_base_url="https://app.example")
    grant = {**GRANT, "subject": f"tenant:{TENANT}", "scope": ["care.escalation_detected"]}
    assert (await client.post("/admin/consents", json=grant, headers=ADMIN)).status == 201
    answer = await signal(client, "aisha", fresh("aisha", fixture("aisha", "care.escalation_detected__golden")))
    assert answer["status"] == "invited"
    await drain(client)
    posted = dm(fake, ANA)
    headline = "A contact could use a person: asked for a person, sounded unhappy (high confidence)."
    assert posted["blocks"][0]["text"]["text"] == headline
    buttons = {e["action_id"]: e for e in elements(posted["blocks"])}
    assert buttons["care_ack_1"]["text"]["text"] == "I'll reach out" and buttons["care_ack_1"]["value"].endswith(":1")
    assert buttons["care_open"]["url"] == "https://app.example/app/contacts/6b1c8f0e-2d4a-4e5b-8c9d-0e1f2a3b4c5d"
    words = json.dumps([posted["text"], posted["blocks"][:2]]).lower()
    assert not any(w in words for w in ("urgent", "alert", "escalation"))
    response = await press(client, ANA, "care_open", "")
    assert response.status == 200
    assert (await loop(client, answer))["status"] == "invited"  # opening the link is not an answer


async def test_an_agent_no_longer_active_cannot_answer_in_slack(start: Start, fake: FakeSlack, sink: Sink) -> None:
    """Switched off in the directory: Ana's buttons, close modal and /care are refused as a stranger's are."""
    client, answer, invitation = await invited(start, fake)
    assert (await client.patch("/admin/agents/ana", json={"active": False}, headers=ADMIN)).status == 200

    assert (await press(client, ANA, "care_ack_1", f"{invitation}:1")).status == 200
    assert (await press(client, ANA, "care_done", str(invitation))).status == 200
    response = await submit(client, ANA, invitation, "held-space")
    assert slack.REFUSED in json.dumps(await response.json(), ensure_ascii=False)
    body, headers = slash_command(SECRET, user_id=ANA)
    assert (await (await client.post("/slack/events", data=body, headers=headers)).json())["text"] == slack.NOT_AN_AGENT

    state = await loop(client, answer)
    assert state["acks"] == [] and state["done"] is None and fake.calls_to("views.open") == []
    refusals = [a for a in await audit(client) if a["kind"] == "refusal"]
    assert len(refusals) == 3 and all("no longer active" in a["reason"] for a in refusals)


@pytest.mark.parametrize(
    ("body", "content_type", "signed_with", "expected"),
    [
        (b"{bad", "application/json", "wrong-secret", (401, "invalid_signature")),
        (b"[1]", "application/json", "wrong-secret", (401, "invalid_signature")),
        (b"a=b", "application/x-www-form-urlencoded; charset=bogus", SECRET, (400, "bad_request")),
        (b"payload=%7B", "application/x-www-form-urlencoded", SECRET, (400, "bad_request")),
        (b'payload="x"', "application/x-www-form-urlencoded", SECRET, (400, "bad_request")),
        (b"\xff\xfe", "application/x-www-form-urlencoded", SECRET, (400, "bad_request")),
        (b"a=b", "application/x-www-form-urlencoded", SECRET, (404, "not_found")),
    ],
    ids=[
        "unsigned-json",
        "unsigned-array",
        "bogus-charset",
        "broken-payload",
        "payload-string",
        "not-utf8",
        "unknown-kind",
    ],
)
async def test_unreadable_slack_requests_get_the_contracts_4xx(
    start: Start, body: bytes, content_type: str, signed_with: str, expected: tuple[int, str]
) -> None:
    """Nothing unsigned is parsed; a signed body Bolt cannot read is a 400; the contract's error shape throughout."""
    client = await start("ana")
    headers = {**sign(signed_with, body), "Content-Type": content_type}
    response = await client.post("/slack/events", data=body, headers=headers)
    answer = await response.json()
    assert (response.status, answer["error"]) == expected and answer["detail"]


@pytest.mark.parametrize(
    "odd",
    [{"user": "U0ANA"}, {"container": "C1", "channel": "C1"}, {"actions": ["x"]}, {"actions": []}],
    ids=["user-string", "container-string", "action-string", "no-actions"],
)
async def test_signed_button_payloads_of_odd_shape_record_nothing(
    start: Start, fake: FakeSlack, odd: dict[str, Any]
) -> None:
    """A signed block action whose parts are not the objects Slack sends is answered without a 5xx; nothing is
    recorded unless it still names the invited agent and one of her answers."""
    import urllib.parse

    client, answer, invitation = await invited(start, fake)
    body, _ = block_action(SECRET, user_id=ANA, action_id="care_ack_1", value=f"{invitation}:1")
    payload = json.loads(urllib.parse.parse_qs(body.decode())["payload"][0])
    raw = urllib.parse.urlencode({"payload": json.dumps({**payload, **odd})}).encode()
    response = await client.post("/slack/events", data=raw, headers=sign(SECRET, raw))
    assert response.status < 500
    acks = (await loop(client, answer))["acks"]
    if "container" in odd:  # Ana's own press on her own invitation: recorded; only the reply has nowhere to go
        assert [a["by"]["id"] for a in acks] == ["ana"]
    else:
        assert acks == []


async def test_a_slow_provider_holds_up_only_its_own_lane(start: Start, fake: FakeSlack) -> None:
    """Slack answering nothing for a while fills Slack's lane of sends; an invitation on
    another channel (the console here) goes out meanwhile, and nothing is lost."""
    slow = LANE_CONCURRENCY + 2
    client = await start("ana", dev=True)
    for n in range(slow - 1):
        agent = {"id": f"s{n}", "display": f"S{n}", "groups": ["care-circle"], "slack_user": f"U0S{n}"}
        assert (await client.post("/admin/agents", json={**agent, "channels": ["slack"]}, headers=ADMIN)).status == 201
    # "zo" sorts last: its invitation is the last one claimed, behind every Slack one
    console = {"id": "zo", "display": "Zo", "groups": ["care-circle"], "channels": ["console"]}
    assert (await client.post("/admin/agents", json=console, headers=ADMIN)).status == 201
    fake.fail_next("chat.postMessage", delay=600, times=slow)  # answered when the fake stops
    await signal(client)
    outbox = client.app[OUTBOX]
    assert await outbox.run_once() == slow + 1

    async def statuses() -> dict[str, str]:
        rows = await query(client.app, "SELECT agent_id, status FROM invitation")
        return {str(agent): str(status) for agent, status in rows}

    await fake.wait_for("chat.postMessage", count=LANE_CONCURRENCY, timeout=10)
    deadline = time.monotonic() + 10  # a condition, polled with a generous deadline; not a measured time
    while (await statuses())["zo"] != "sent":
        assert time.monotonic() < deadline, "the console invitation waited for Slack"
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.2)  # room for a call beyond the lane's bound to show up (none may)
    assert len(fake.calls_to("chat.postMessage")) == LANE_CONCURRENCY  # the rest wait for Slack's lane
    assert [s for agent, s in (await statuses()).items() if agent != "zo"] == ["queued"] * slow
    fake.release()
    await outbox.drain()
    assert set((await statuses()).values()) == {"sent"}
    assert len(fake.calls_to("chat.postMessage")) == slow


async def test_the_slack_sdk_never_logs_an_invitation_even_at_debug(
    start: Start, fake: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    """slack_sdk writes every request's JSON at DEBUG unless its logger says otherwise: with the
    process logging at DEBUG, an invitation's whisper still reaches no log record (rule 5)."""
    caplog.set_level(logging.DEBUG)
    client = await start("ana")
    await signal(client)
    await drain(client)
    assert [
        c["text"] for c in fake.calls_to("chat.postMessage") if WHISPER in json.dumps(c, ensure_ascii=False)
    ]  # it was sent
    assert not [r for r in caplog.records if WHISPER in r.getMessage() or "chat.postMessage" in r.getMessage()]


async def test_a_send_that_waited_for_its_lane_checks_consent_again(
    start: Start, fake: FakeSlack, clock: Clock
) -> None:
    """The batch's facts are read when its rows are claimed; an invitation that then waits for
    Slack's lane longer than FRESH_SEC reads them again, so a grant revoked meanwhile stops it."""
    clock.fixed = time.time()
    client = await start("ana")
    for n in range(LANE_CONCURRENCY):
        agent = {"id": f"s{n}", "display": f"S{n}", "groups": ["care-circle"], "slack_user": f"U0S{n}"}
        assert (await client.post("/admin/agents", json={**agent, "channels": ["slack"]}, headers=ADMIN)).status == 201
    fake.fail_next("chat.postMessage", delay=600, times=LANE_CONCURRENCY)  # the lane's first sends, held
    await signal(client)
    outbox = client.app[OUTBOX]
    assert await outbox.run_once() == LANE_CONCURRENCY + 1
    await fake.wait_for("chat.postMessage", count=LANE_CONCURRENCY, timeout=10)
    clock.fixed += FRESH_SEC + 1  # the last invitation has now waited longer than FRESH_SEC
    grants = await (await client.get("/admin/consents", headers=ADMIN)).json()
    (grant,) = grants["items"] if isinstance(grants, dict) else grants
    assert (await client.delete(f"/admin/consents/{grant['id']}?by=admin", headers=ADMIN)).status == 204
    fake.release()
    await outbox.drain()
    statuses = sorted(s for (s,) in await query(client.app, "SELECT status FROM invitation"))
    assert statuses == ["sent"] * LANE_CONCURRENCY + ["skipped"]
    assert len(fake.calls_to("chat.postMessage")) == LANE_CONCURRENCY
    assert await query(client.app, "SELECT last_error FROM outbox WHERE status = 'skipped'") == [("consent_revoked",)]


@pytest.mark.parametrize("value", [{"text": "Ana — ți-e bine?", "blocks": [{"n": 1}]}, {"n": 2**70}, [None, 1.5]])
def test_request_bodies_are_json_slack_reads_back(value: Any) -> None:
    """Bodies to Slack are written by orjson, and by json for what orjson refuses (an integer past 64 bits)."""
    assert json.loads(_json_text(value)) == value


async def test_a_token_in_the_environment_starts_slack_without_a_warning(
    start: Start, fake: FakeSlack, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SLACK_BOT_TOKEN in the environment, as production sets it: Bolt would warn at every start
    that the relay's own client wins over it; the log stays quiet, and the relay still sends."""
    monkeypatch.setenv("SLACK_BOT_TOKEN", DEFAULT_TOKEN)
    caplog.set_level(logging.INFO)
    client = await start("ana")
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING and r.name.startswith("care_relay.slack")]
    await signal(client)
    await drain(client)
    assert len(fake.calls_to("chat.postMessage")) == 1
