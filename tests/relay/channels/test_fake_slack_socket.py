"""FakeSlack speaks Socket Mode, users.lookupByEmail and views.publish: proven with the real slack_sdk, no patching."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web.async_client import AsyncWebClient

from tests.fakes.slack import (
    APP_ID,
    APP_TOKEN,
    DEFAULT_TOKEN,
    FakeSlack,
    app_home_opened,
    block_action_payload,
    slash_command_fields,
)


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as server:
        yield server


class Recorder:
    """A Socket Mode client's view: every message it read, every request it was handed."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.requests: list[SocketModeRequest] = []


@pytest.fixture
async def socket_client(fake: FakeSlack) -> AsyncIterator[tuple[SocketModeClient, Recorder]]:
    """The real SocketModeClient; its apps.connections.open goes to the fake through its web client."""
    recorder = Recorder()
    client = SocketModeClient(app_token=APP_TOKEN, web_client=AsyncWebClient(base_url=fake.api_url), ping_interval=30)

    async def on_message(_client: Any, message: dict[str, Any], _raw: str | None) -> None:
        recorder.messages.append(message)

    async def on_request(client: SocketModeClient, request: SocketModeRequest) -> None:
        recorder.requests.append(request)
        payload = {"text": "seen"} if request.accepts_response_payload else None
        await client.send_socket_mode_response(SocketModeResponse(envelope_id=request.envelope_id, payload=payload))

    client.message_listeners.append(on_message)
    client.socket_mode_request_listeners.append(on_request)
    try:
        yield client, recorder
    finally:
        await client.close()


async def test_hello_envelopes_and_acks(fake: FakeSlack, socket_client: tuple[SocketModeClient, Recorder]) -> None:
    """The client connects with the app token, reads hello, and acks each envelope with its envelope_id."""
    client, recorder = socket_client
    await client.connect()
    await fake.wait_connected()
    (opened,) = fake.calls_to("apps.connections.open")
    (call,) = [c for c in fake.calls if c.method == "apps.connections.open"]
    assert call.headers["Authorization"] == f"Bearer {APP_TOKEN}" and opened == {}

    pressed = block_action_payload(user_id="U0ANA", action_id="care_ack_1", value="7:1")
    ack = await fake.push("interactive", pressed)
    assert set(ack) == {"envelope_id"}  # a block action's ack carries no payload
    (request,) = recorder.requests
    assert (request.type, request.envelope_id, request.payload) == ("interactive", ack["envelope_id"], pressed)
    assert request.accepts_response_payload is False

    command = await fake.push("slash_commands", slash_command_fields(user_id="U0ANA"))
    assert command["payload"] == {"text": "seen"} and recorder.requests[-1].payload["command"] == "/care"
    event = await fake.push("events_api", app_home_opened("U0ANA"))
    assert recorder.requests[-1].payload["event"]["type"] == "app_home_opened" and "payload" not in event
    assert recorder.requests[-1].retry_attempt == 0

    hello = recorder.messages[0]
    assert hello["type"] == "hello" and hello["connection_info"] == {"app_id": APP_ID}
    assert fake.socket_received == [ack, command, event]


async def test_disconnect_makes_the_client_open_a_new_connection(
    fake: FakeSlack, socket_client: tuple[SocketModeClient, Recorder]
) -> None:
    """Slack's `disconnect` (refresh_requested): the client asks apps.connections.open again and reconnects."""
    client, recorder = socket_client
    await client.connect()
    await fake.wait_connected()
    await fake.disconnect()
    await fake.wait_connected(2)
    assert len(fake.calls_to("apps.connections.open")) == 2
    ack = await fake.push("interactive", block_action_payload(user_id="U0BO", action_id="care_done", value="7"))
    assert recorder.requests[-1].envelope_id == ack["envelope_id"]
    # slack_sdk acts on `disconnect` itself (listeners never see it): two sockets, two hellos
    assert [m["type"] for m in recorder.messages] == ["hello", "hello", "interactive"]


async def test_connections_open_wants_the_app_token_and_a_ticket_works_once(fake: FakeSlack) -> None:
    """A bot token is the wrong kind, another xapp token is refused, and a used or made-up ticket is not upgraded."""
    web = AsyncWebClient(base_url=fake.api_url)
    with pytest.raises(SlackApiError) as wrong_kind:
        await web.apps_connections_open(app_token=DEFAULT_TOKEN)
    assert wrong_kind.value.response["error"] == "not_allowed_token_type"
    with pytest.raises(SlackApiError) as wrong_token:
        await web.apps_connections_open(app_token="xapp-1-A0OTHER-1-nope")
    assert wrong_token.value.response["error"] == "invalid_auth"
    url = (await web.apps_connections_open(app_token=APP_TOKEN))["url"]
    assert url.startswith(fake.socket_url + "link/?ticket=")
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url) as ws:
            assert (await ws.receive_json())["type"] == "hello"
        for reused in (url, fake.socket_url + "link/?ticket=made-up"):
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await session.ws_connect(reused)
            assert refused.value.status == 401


async def test_push_without_an_ack_fails_within_its_deadline(fake: FakeSlack) -> None:
    """A client that never acks: `push` raises once its timeout passes, it does not hang."""
    url = (await AsyncWebClient(base_url=fake.api_url).apps_connections_open(app_token=APP_TOKEN))["url"]
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        assert (await ws.receive_json())["type"] == "hello"
        pushing = asyncio.create_task(fake.push("interactive", {"type": "block_actions"}, timeout=0.2))
        envelope = await ws.receive_json()
        assert envelope["type"] == "interactive" and envelope["accepts_response_payload"] is False
        with pytest.raises(AssertionError, match="no ack"):
            await pushing


async def test_lookup_by_email_and_views_publish(fake: FakeSlack) -> None:
    """users.lookupByEmail finds a seeded member (any case) or answers users_not_found; views.publish keeps each Home."""
    web = AsyncWebClient(token=DEFAULT_TOKEN, base_url=fake.api_url)
    fake.add_user("U0ANA", "ana@example.org")
    found = await web.users_lookupByEmail(email="Ana@Example.org")
    assert found["user"]["id"] == "U0ANA" and found["user"]["profile"]["email"] == "ana@example.org"
    with pytest.raises(SlackApiError) as missing:
        await web.users_lookupByEmail(email="bob@example.org")
    assert missing.value.response["error"] == "users_not_found"
    view = {"type": "home", "blocks": [{"type": "section", "text": {"type": "plain_text", "text": "hi"}}]}
    published = await web.views_publish(user_id="U0ANA", view=view)
    assert published["view"]["type"] == "home" and fake.home_views["U0ANA"]["blocks"] == view["blocks"]
    with pytest.raises(SlackApiError) as not_home:
        await web.views_publish(user_id="U0ANA", view={"type": "modal", "blocks": []})
    assert not_home.value.response["error"] == "invalid_arguments"
    with pytest.raises(SlackApiError) as unauthed:
        await AsyncWebClient(token="xoxb-wrong", base_url=fake.api_url).users_lookupByEmail(email="ana@example.org")
    assert unauthed.value.response["error"] == "invalid_auth"
