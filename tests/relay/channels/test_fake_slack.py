"""FakeSlack speaks Slack's wire format: proven with the real slack_sdk and slack_bolt, no patching."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs

import pytest
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from tests.fakes.slack import (
    BOT_ID,
    BOT_USER_ID,
    DEFAULT_TOKEN,
    FIRST_TS,
    TEAM_ID,
    FakeSlack,
    block_action,
    plain_text_input,
    sign,
    slash_command,
    static_select,
    view_submission,
)

SECRET = "fake-signing-secret-8e2f"
BLOCKS = [
    {"type": "section", "text": {"type": "mrkdwn", "text": "Aisha may need a check-in."}},
    {
        "type": "actions",
        "block_id": "respond",
        "elements": [
            {"type": "button", "action_id": "ack", "text": {"type": "plain_text", "text": "On it"}, "value": "s1"}
        ],
    },
]
VIEW = {
    "type": "modal",
    "callback_id": "note",
    "private_metadata": "signal-1",
    "title": {"type": "plain_text", "text": "Note"},
    "submit": {"type": "plain_text", "text": "Save"},
    "blocks": [
        {
            "type": "input",
            "block_id": "n",
            "label": {"type": "plain_text", "text": "Note"},
            "element": {"type": "plain_text_input", "action_id": "n"},
        }
    ],
}


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as server:
        yield server


@pytest.fixture
def sdk(fake: FakeSlack) -> AsyncWebClient:
    return AsyncWebClient(token=DEFAULT_TOKEN, base_url=fake.api_url)


async def test_api_url_and_auth_test(fake: FakeSlack, sdk: AsyncWebClient) -> None:
    """auth.test answers ok with team/user/bot ids; the bearer token and scopes header travel."""
    assert fake.api_url.startswith("http://127.0.0.1:") and fake.api_url.endswith("/api/")
    resp = await sdk.auth_test()
    assert resp.status_code == 200
    assert (resp["team_id"], resp["user_id"], resp["bot_id"]) == (TEAM_ID, BOT_USER_ID, BOT_ID)
    assert resp.headers["x-oauth-scopes"]
    method, params, headers = fake.calls[0]
    assert method == "auth.test" and params == {}
    assert headers["authorization"] == f"Bearer {DEFAULT_TOKEN}"


async def test_conversations_open_is_sent_in_the_query_string(fake: FakeSlack, sdk: AsyncWebClient) -> None:
    """conversations.open (a params= method) goes as a query string with an empty body; answers a D channel."""
    resp = await sdk.conversations_open(users="U123ABC")
    assert resp["channel"]["id"] == "DU123ABC"
    assert fake.calls_to("conversations.open") == [{"users": "U123ABC"}]
    raw = fake.requests[-1]
    assert parse_qs(raw.query) == {"users": ["U123ABC"]} and raw.body == b""
    assert raw.content_type == "application/x-www-form-urlencoded"
    full = await sdk.conversations_open(users=["U123ABC"], return_im=True)
    assert full["channel"]["is_im"] is True and fake.calls_to("conversations.open")[-1]["return_im"] == "1"


async def test_post_message_with_blocks_is_json_and_update_follows(fake: FakeSlack, sdk: AsyncWebClient) -> None:
    """chat.postMessage/chat.update send JSON bodies; ts values are unique and the update edits the message."""
    first = await sdk.chat_postMessage(channel="DU1", text="check in", blocks=BLOCKS)
    second = await sdk.chat_postMessage(channel="U2", text="again")
    assert first["ts"] == FIRST_TS and second["ts"] > first["ts"]
    assert (first["channel"], second["channel"]) == ("DU1", "DU2")  # a user id posts to the DM
    assert first["message"]["blocks"] == BLOCKS and first["message"]["bot_id"] == BOT_ID
    assert fake.calls_to("chat.postMessage")[0] == {"channel": "DU1", "text": "check in", "blocks": BLOCKS}
    assert fake.requests[0].content_type.startswith("application/json")
    assert json.loads(fake.requests[0].body)["blocks"] == BLOCKS

    updated = await sdk.chat_update(channel="DU1", ts=first["ts"], text="handled", blocks=BLOCKS[:1])
    assert updated["ts"] == first["ts"] and updated["text"] == "handled"
    assert fake.calls_to("chat.update") == [{"channel": "DU1", "ts": FIRST_TS, "text": "handled", "blocks": BLOCKS[:1]}]
    assert fake.messages[("DU1", FIRST_TS)]["blocks"] == BLOCKS[:1]


async def test_update_errors_like_slack(fake: FakeSlack, sdk: AsyncWebClient) -> None:
    """chat.update of an unknown message or with a user id instead of a channel fails as Slack does."""
    posted = await sdk.chat_postMessage(channel="U1", text="x")
    for channel, ts, error in [("DU1", "1.2", "message_not_found"), ("U1", posted["ts"], "channel_not_found")]:
        with pytest.raises(SlackApiError) as info:
            await sdk.chat_update(channel=channel, ts=ts, text="y")
        assert info.value.response.status_code == 200 and info.value.response["error"] == error


async def test_post_ephemeral_and_views(fake: FakeSlack, sdk: AsyncWebClient) -> None:
    """chat.postEphemeral, views.open and views.update answer as Slack does and are recorded as JSON."""
    eph = await sdk.chat_postEphemeral(channel="DU1", user="U1", text="only you")
    assert eph["message_ts"]
    opened = await sdk.views_open(trigger_id="T1", view=VIEW)
    view = opened["view"]
    assert view["id"].startswith("V") and view["callback_id"] == "note" and view["private_metadata"] == "signal-1"
    assert fake.calls_to("views.open") == [{"trigger_id": "T1", "view": VIEW}]
    updated = await sdk.views_update(view_id=view["id"], hash=view["hash"], view={**VIEW, "private_metadata": "2"})
    assert updated["view"]["private_metadata"] == "2" and updated["view"]["hash"] != view["hash"]
    with pytest.raises(SlackApiError) as info:
        await sdk.views_update(view_id=view["id"], hash=view["hash"], view=VIEW)
    assert info.value.response["error"] == "hash_conflict"


async def test_unknown_method_and_auth_errors(fake: FakeSlack, sdk: AsyncWebClient) -> None:
    """Unknown methods give unknown_method; a wrong token invalid_auth; no token not_authed (all HTTP 200)."""
    cases = [
        (sdk, "users.info", "unknown_method"),
        (AsyncWebClient(token="xoxb-wrong", base_url=fake.api_url), "chat.postMessage", "invalid_auth"),
        (AsyncWebClient(base_url=fake.api_url), "auth.test", "not_authed"),
    ]
    for client, method, error in cases:
        with pytest.raises(SlackApiError) as info:
            await client.api_call(method, json={"channel": "U1", "text": "x"})
        assert info.value.response.status_code == 200 and info.value.response["error"] == error
    assert fake.methods() == ["users.info", "chat.postMessage", "auth.test"]


async def test_rate_limit_is_not_retried_by_default(fake: FakeSlack, sdk: AsyncWebClient) -> None:
    """A 429 surfaces at once as SlackApiError with status 429 and Retry-After: the default client does not retry it."""
    assert [type(h) for h in sdk.retry_handlers] == [AsyncConnectionErrorRetryHandler]
    fake.fail_next("chat.postMessage", status=429, retry_after=30)
    with pytest.raises(SlackApiError) as info:
        await sdk.chat_postMessage(channel="U1", text="x")
    resp = info.value.response
    assert resp.status_code == 429 and resp.headers["Retry-After"] == "30" and resp["error"] == "ratelimited"
    assert len(fake.calls_to("chat.postMessage")) == 1
    assert (await sdk.chat_postMessage(channel="U1", text="x"))["ok"]  # the failure was used up


async def test_rate_limit_handler_is_opt_in(fake: FakeSlack) -> None:
    """With AsyncRateLimitErrorRetryHandler added, the SDK honours Retry-After and retries by itself."""
    client = AsyncWebClient(
        token=DEFAULT_TOKEN, base_url=fake.api_url, retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=1)]
    )
    fake.fail_next("chat.postMessage", status=429, retry_after=0)
    assert (await client.chat_postMessage(channel="U1", text="x"))["ok"]
    assert len(fake.calls_to("chat.postMessage")) == 2


async def test_server_errors_and_permanent_errors(fake: FakeSlack, sdk: AsyncWebClient) -> None:
    """fail_next gives HTTP 5xx (HTML body, data == {}) or HTTP 200 ok:false errors, `times` times."""
    fake.fail_next("chat.postMessage", status=503)
    with pytest.raises(SlackApiError) as info:
        await sdk.chat_postMessage(channel="U1", text="x")
    assert info.value.response.status_code == 503 and info.value.response.data == {}

    fake.fail_next("conversations.open", error="user_not_found", times=2)
    for _ in range(2):
        with pytest.raises(SlackApiError) as info:
            await sdk.conversations_open(users="U9")
        assert info.value.response.status_code == 200 and info.value.response["error"] == "user_not_found"
    assert (await sdk.conversations_open(users="U9"))["ok"]

    fake.unknown_users.add("U404")
    with pytest.raises(SlackApiError) as info:
        await sdk.chat_postMessage(channel="U404", text="x")
    assert info.value.response["error"] == "channel_not_found"


async def test_delay_makes_the_client_time_out(fake: FakeSlack) -> None:
    """A delayed answer trips the client's total timeout as TimeoutError, with no automatic retry."""
    client = AsyncWebClient(token=DEFAULT_TOKEN, base_url=fake.api_url, timeout=0.2)  # type: ignore[arg-type]
    fake.fail_next("chat.postMessage", delay=30)
    started = time.monotonic()
    with pytest.raises(asyncio.TimeoutError):
        await client.chat_postMessage(channel="U1", text="x")
    # cut by the client's 0.2 s, not ended by the fake's answer; one call, so no retry
    assert time.monotonic() - started < 10 and len(fake.calls_to("chat.postMessage")) == 1


def test_signed_helpers_pass_signature_verifier() -> None:
    """block_action, view_submission and slash_command carry a v0 signature SignatureVerifier accepts."""
    verifier = SignatureVerifier(SECRET)
    built = [
        block_action(SECRET, user_id="U1", action_id="ack", value="s1"),
        view_submission(SECRET, user_id="U1", callback_id="note", private_metadata="m", values={"n": "hi"}),
        slash_command(SECRET, user_id="U1", text="status"),
    ]
    for body, headers in built:
        assert verifier.is_valid(body, headers["X-Slack-Request-Timestamp"], headers["X-Slack-Signature"])
        assert verifier.is_valid_request(body, headers)
        assert not SignatureVerifier("other-secret").is_valid_request(body, headers)
        assert not verifier.is_valid_request(body + b"x", headers)
    old = sign(SECRET, b"a=1", timestamp=int(time.time()) - 600)
    assert not verifier.is_valid_request(b"a=1", old)


def test_inbound_payload_shapes() -> None:
    """Payloads are shaped like Slack's: form `payload=` JSON for interactions, plain form for commands."""
    body, _ = block_action(SECRET, user_id="U1", action_id="ack", value="s1", response_url="http://x/actions/1")
    payload = json.loads(parse_qs(body.decode())["payload"][0])
    assert payload["type"] == "block_actions" and payload["user"] == {
        "id": "U1",
        "username": "u1",
        "name": "u1",
        "team_id": TEAM_ID,
    }
    assert payload["actions"][0] | {"action_ts": ""} == {
        "action_id": "ack",
        "block_id": "b",
        "value": "s1",
        "type": "button",
        "action_ts": "",
        "text": {"type": "plain_text", "text": "s1", "emoji": True},
    }
    assert payload["container"] == {
        "type": "message",
        "message_ts": FIRST_TS,
        "channel_id": "DU1",
        "is_ephemeral": False,
    }
    assert payload["channel"]["id"] == "DU1" and payload["response_url"] == "http://x/actions/1"

    body, _ = view_submission(
        SECRET,
        user_id="U1",
        callback_id="note",
        private_metadata="m",
        values={"n": "hi", "who": {"pick": static_select("v1", "Vera")}, "e": {"e": plain_text_input(None)}},
    )
    view = json.loads(parse_qs(body.decode())["payload"][0])["view"]
    assert view["state"]["values"] == {
        "n": {"n": {"type": "plain_text_input", "value": "hi"}},
        "who": {
            "pick": {
                "type": "static_select",
                "selected_option": {"text": {"type": "plain_text", "text": "Vera", "emoji": True}, "value": "v1"},
            }
        },
        "e": {"e": {"type": "plain_text_input", "value": None}},
    }

    body, _ = slash_command(SECRET, user_id="U1", text="status now")
    form = {k: v[0] for k, v in parse_qs(body.decode(), keep_blank_values=True).items()}
    assert form["command"] == "/care" and form["text"] == "status now" and form["user_id"] == "U1"


def _bolt_web_app(bolt: AsyncApp) -> web.Application:
    async def events(request: web.Request) -> web.Response:
        return await to_aiohttp_response(await bolt.async_dispatch(await to_bolt_request(request)))

    app = web.Application()
    app.router.add_post("/slack/events", events)
    return app


async def test_bolt_app_talks_only_to_the_fake(fake: FakeSlack, aiohttp_client: Any) -> None:
    """A real AsyncApp with client=AsyncWebClient(base_url=fake) acks a signed button press and posts via the fake."""
    bolt = AsyncApp(signing_secret=SECRET, client=AsyncWebClient(token=DEFAULT_TOKEN, base_url=fake.api_url))
    seen: list[dict[str, Any]] = []

    @bolt.action("x")
    async def on_x(ack: Any, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        seen.append(body)
        await client.chat_postMessage(channel=body["user"]["id"], text=f"got {body['actions'][0]['value']}")

    http = await aiohttp_client(_bolt_web_app(bolt))
    assert fake.calls == []  # AsyncApp does not call auth.test at construction
    body, headers = block_action(SECRET, user_id="U77", action_id="x", value="s1")
    resp = await http.post("/slack/events", data=body, headers=headers)
    assert resp.status == 200
    posted = await fake.wait_for("chat.postMessage")
    assert fake.methods() == ["auth.test", "chat.postMessage"]
    assert posted[0]["channel"] == "U77" and posted[0]["text"] == "got s1"
    assert posted[0]["team_id"] == TEAM_ID  # Bolt's per-request client adds team_id
    assert seen[0]["container"]["message_ts"] == FIRST_TS

    bad = dict(headers, **{"X-Slack-Signature": "v0=" + "0" * 64})
    assert (await http.post("/slack/events", data=body, headers=bad)).status == 401
    await http.post("/slack/events", data=body, headers=headers)
    await fake.wait_for("chat.postMessage", count=2)
    assert fake.methods().count("auth.test") == 1  # cached after the first dispatch


async def test_bolt_parses_view_submission_and_slash_command(fake: FakeSlack, aiohttp_client: Any) -> None:
    """Bolt routes the helpers' view_submission by callback_id and slash command by name, with the values intact."""
    bolt = AsyncApp(
        signing_secret=SECRET,
        client=AsyncWebClient(token=DEFAULT_TOKEN, base_url=fake.api_url),
        process_before_response=True,
    )
    got: dict[str, Any] = {}

    @bolt.view("note")
    async def on_note(ack: Any, view: dict[str, Any]) -> None:
        got["view"] = view
        await ack()

    @bolt.command("/care")
    async def on_care(ack: Any, command: dict[str, Any]) -> None:
        got["command"] = command
        await ack(text="ok")

    http = await aiohttp_client(_bolt_web_app(bolt))
    body, headers = view_submission(
        SECRET,
        user_id="U1",
        callback_id="note",
        private_metadata="sig-9",
        values={"who": {"pick": static_select("v1")}},
    )
    assert (await http.post("/slack/events", data=body, headers=headers)).status == 200
    assert got["view"]["private_metadata"] == "sig-9"
    assert got["view"]["state"]["values"]["who"]["pick"]["selected_option"]["value"] == "v1"

    body, headers = slash_command(SECRET, user_id="U1", text="status")
    resp = await http.post("/slack/events", data=body, headers=headers)
    assert resp.status == 200 and await resp.text() == "ok"  # a text-only ack is a plain-text body
    assert got["command"]["text"] == "status" and got["command"]["user_id"] == "U1"
    assert fake.methods() == ["auth.test"]
