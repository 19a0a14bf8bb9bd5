"""Slack over Socket Mode, end to end: the relay connects to FakeSlack's WebSocket with
SLACK_APP_TOKEN (no signing secret, no public URL), and presses, the close modal, `/care`
and the App Home arrive as envelopes the relay acks.

The same Bolt app and listeners answer as over HTTP (tests/relay/channels/test_slack.py).
Nothing is monkeypatched; the outbox is driven by hand.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from relay.app import create_app
from relay.channels.slack import flow as slack
from relay.channels.slack import home
from relay.config import ConfigError, load
from relay.keys import WRITER
from tests.fakes.slack import (
    APP_TOKEN,
    DEFAULT_TOKEN,
    FakeSlack,
    app_home_opened,
    block_action,
    block_action_payload,
    event_request,
    slash_command_fields,
    static_select,
    view_submission_payload,
)
from tests.relay.channels.test_slack import (
    ADMIN,
    AGENTS,
    ANA,
    BO,
    GRANT,
    STRANGER,
    WHISPER,
    Sink,
    dm,
    drain,
    elements,
    invitation_of,
    loop,
    signal,
)
from tests.support import make_settings

SECRET = "slack-signing-secret-for-socket-tests"

Start = Callable[..., Awaitable[TestClient]]


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


@pytest.fixture
def start(fake: FakeSlack, sink: Sink, aiohttp_client: Any, database_url: str) -> Start:
    """The real app with SLACK_APP_TOKEN (and no signing secret unless given), connected to the fake's socket.

    The fake is set up first so that it stops last: the relay closes its socket, not the other way round.
    """

    async def started(**settings: Any) -> TestClient:
        values = {
            "slack_bot_token": DEFAULT_TOKEN,
            "slack_app_token": APP_TOKEN,
            "slack_api_url": fake.api_url,
            "m3_callback_url": sink.url,
            **settings,
        }
        client: TestClient = await aiohttp_client(create_app(make_settings(database_url, **values), run_outbox=False))
        for agent in ("ana", "bo", "cy"):
            assert (await client.post("/admin/agents", json=AGENTS[agent], headers=ADMIN)).status == 201
        assert (await client.post("/admin/consents", json=GRANT, headers=ADMIN)).status == 201
        await fake.wait_connected()
        return client

    return started


async def invited(client: TestClient, fake: FakeSlack) -> tuple[dict[str, Any], int]:
    """A signal for Ana and Bo, their DMs sent: the 202 answer and Ana's invitation id."""
    answer = await signal(client)
    await drain(client)
    await fake.wait_for("chat.postMessage", count=2)
    return answer, invitation_of(fake, ANA)


async def press(fake: FakeSlack, user: str, action_id: str, value: str) -> dict[str, Any]:
    return await fake.push("interactive", block_action_payload(user_id=user, action_id=action_id, value=value))


async def submit(fake: FakeSlack, user: str, invitation: int, outcome: str | None, note: str = "") -> dict[str, Any]:
    values = {"outcome": {"outcome": static_select(outcome)}, "note": {"note": note}}
    payload = view_submission_payload(
        user_id=user, callback_id="care_done_modal", private_metadata=str(invitation), values=values
    )
    return await fake.push("interactive", payload)


def ephemerals(fake: FakeSlack, user: str) -> list[str]:
    return [p["text"] for p in fake.calls_to("chat.postEphemeral") if p["user"] == user]


async def test_a_press_over_socket_mode_acks_updates_the_dm_and_closes_the_loop(
    start: Start, fake: FakeSlack, sink: Sink
) -> None:
    """With only an app token: a button pushed over the WebSocket is acked, recorded, the DMs updated; the modal closes the loop."""
    client = await start()
    (opened,) = [c for c in fake.calls if c.method == "apps.connections.open"]
    assert opened.headers["Authorization"] == f"Bearer {APP_TOKEN}"
    answer, invitation = await invited(client, fake)

    ack = await press(fake, ANA, "care_ack_1", f"{invitation}:1")
    assert set(ack) == {"envelope_id"}  # acked at once, nothing for Slack to show
    state = await loop(client, answer)
    assert state["status"] == "acked" and ephemerals(fake, ANA) == []
    assert [(a["by"]["id"], a["action"]) for a in state["acks"]] == [("ana", "soft-checkin")]
    await drain(client)
    updates = await fake.wait_for("chat.update", count=2)
    assert sorted(u["channel"] for u in updates) == ["D" + ANA, "D" + BO]
    notes = [e["text"] for b in dm(fake, BO)["blocks"] if b["type"] == "context" for e in b["elements"]]
    assert notes == ["Ana is here — Check in gently"]
    (callback,) = sink.verified()
    assert callback["type"] == "care.ack" and callback["for"] == answer["id"]

    await press(fake, STRANGER, "care_ack_1", f"{invitation}:1")
    assert ephemerals(fake, STRANGER) == [slack.REFUSED]

    await press(fake, ANA, "care_done", str(invitation))
    (modal,) = await fake.wait_for("views.open")
    assert modal["view"]["callback_id"] == "care_done_modal"
    unpicked = await submit(fake, ANA, invitation, None)
    assert unpicked["payload"] == {"response_action": "errors", "errors": {"outcome": "Pick how it ended."}}
    closed = await submit(fake, ANA, invitation, "held-space", "We sat together.")
    assert "payload" not in closed  # an empty ack closes the modal
    state = await loop(client, answer)
    assert state["status"] == "done" and state["done"]["outcome"] == "held-space"
    await drain(client)
    await fake.wait_for("chat.update", count=4)
    assert elements(dm(fake, ANA)["blocks"]) == []


async def test_care_command_over_socket_mode_answers_in_the_ack(start: Start, fake: FakeSlack) -> None:
    """`/care` arrives as a slash_commands envelope; the ack's payload is the agent's own list."""
    client = await start()
    await invited(client, fake)
    ack = await fake.push("slash_commands", slash_command_fields(user_id=ANA))
    assert ack["payload"]["response_type"] == "ephemeral"
    assert ack["payload"]["text"].startswith("Your open invitations:") and WHISPER in ack["payload"]["text"]
    stranger = await fake.push("slash_commands", slash_command_fields(user_id=STRANGER))
    assert stranger["payload"]["text"] == slack.NOT_AN_AGENT


async def test_without_a_signing_secret_the_http_route_refuses(start: Start, fake: FakeSlack) -> None:
    """Socket Mode alone: POST /slack/events is refused (401), whatever secret signed it."""
    client = await start()
    body, headers = block_action(SECRET, user_id=ANA, action_id="care_ack_1", value="1:1")
    response = await client.post("/slack/events", data=body, headers=headers)
    assert response.status == 401


async def test_http_still_works_beside_socket_mode(start: Start, fake: FakeSlack) -> None:
    """With a signing secret too, a signed HTTP press is answered by the same listeners."""
    client = await start(slack_signing_secret=SECRET)
    answer, invitation = await invited(client, fake)
    body, headers = block_action(SECRET, user_id=ANA, action_id="care_ack_2", value=f"{invitation}:2")
    assert (await client.post("/slack/events", data=body, headers=headers)).status == 200
    assert [a["action"] for a in (await loop(client, answer))["acks"]] == ["hold-space"]


def home_items(fake: FakeSlack, user: str) -> list[dict[str, Any]]:
    """The invitations a user's published Home tab lists (its sections with a button)."""
    return [b for b in fake.home_views[user]["blocks"] if b["type"] == "section" and "accessory" in b]


async def test_app_home_lists_the_agents_open_invitations_until_the_loop_closes(start: Start, fake: FakeSlack) -> None:
    """Opening Home publishes the agent's open invitation (sender, whisper, code, the signed page); once closed, none."""
    client = await start()
    answer, invitation = await invited(client, fake)
    ack = await fake.push("events_api", app_home_opened(ANA))
    assert "payload" not in ack
    (published,) = await fake.wait_for("views.publish")
    assert published["user_id"] == ANA and published["view"]["type"] == "home"
    (item,) = home_items(fake, ANA)
    assert item["text"]["text"] == f'Raz sent a gentle signal: "{WHISPER}"'
    (facts,) = fake.home_views[ANA]["blocks"][2]["elements"]
    code = await client.app[WRITER].run(
        lambda tx: tx.execute("SELECT code FROM invitation WHERE id = ?", (invitation,)).fetchone()[0]
    )
    assert f"reply code {code}" in facts["text"] and facts["text"].startswith("Sent ")
    page = await client.get(urlsplit(item["accessory"]["url"]).path)
    assert page.status == 200 and item["accessory"]["value"] == str(invitation)

    await fake.push("events_api", app_home_opened(STRANGER))
    await fake.wait_for("views.publish", count=2)
    assert [b["text"]["text"] for b in fake.home_views[STRANGER]["blocks"]] == [home.NOT_AN_AGENT]

    await press(fake, ANA, "care_done", str(invitation))
    values = {"outcome": {"outcome": static_select("talked")}, "note": {"note": ""}}
    await fake.push(
        "interactive",
        view_submission_payload(
            user_id=ANA, callback_id="care_done_modal", private_metadata=str(invitation), values=values
        ),
    )
    assert (await loop(client, answer))["status"] == "done"
    await fake.push("events_api", app_home_opened(ANA))
    await fake.wait_for("views.publish", count=3)
    assert home_items(fake, ANA) == []
    assert home.NOTHING_OPEN in [b["text"]["text"] for b in fake.home_views[ANA]["blocks"] if b["type"] == "section"]


async def test_app_home_over_the_http_events_route(start: Start, fake: FakeSlack) -> None:
    """The same Home, from a signed Events API request to POST /slack/events; the messages tab publishes nothing."""
    client = await start(slack_signing_secret=SECRET)
    await invited(client, fake)
    body, headers = event_request(SECRET, app_home_opened(BO, tab="messages"))
    assert (await client.post("/slack/events", data=body, headers=headers)).status == 200
    body, headers = event_request(SECRET, app_home_opened(BO))
    assert (await client.post("/slack/events", data=body, headers=headers)).status == 200
    (published,) = fake.calls_to("views.publish")
    assert published["user_id"] == BO and len(home_items(fake, BO)) == 1


def test_the_app_token_is_a_secret_and_must_be_an_app_level_token(monkeypatch: pytest.MonkeyPatch) -> None:
    """SLACK_APP_TOKEN stays out of repr; a token of another kind is refused in one line that does not echo it."""
    settings = make_settings("sqlite+aiosqlite:///unused.db", slack_bot_token=DEFAULT_TOKEN, slack_app_token=APP_TOKEN)
    assert APP_TOKEN not in repr(settings) and settings.slack_socket_mode and "slack" in settings.configured_channels
    monkeypatch.setenv("SLACK_APP_TOKEN", DEFAULT_TOKEN)
    with pytest.raises(ConfigError) as refused:
        load(serving=False)
    message = str(refused.value)
    assert message.startswith("SLACK_APP_TOKEN: an app-level token starts with xapp-") and DEFAULT_TOKEN not in message
    assert "\n" not in message
