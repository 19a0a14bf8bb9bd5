"""Slack's requests in: `POST /slack/events`, its signature checked over the raw bytes, then
Bolt's listeners for presses, modal submissions and `/care` (each acks, none raises).

Mounted by the channel registry; Bolt (kept under `BOLT`) dispatches through slack_bolt's
aiohttp adapter (or over Socket Mode, `socket`). A listener hands the payload to
`SlackAnswers` (`flow`) and shows its answer: the modal it opens, an ephemeral line only
the presser sees, or the modal's next view. A failure asks to try again and logs the
error's type only, never care data.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Mapping
from typing import Any

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncApp
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from relay.bodies import read_body
from relay.channels.slack import blocks
from relay.channels.slack.flow import TRY_AGAIN, SlackAnswers
from relay.errors import (
    BadRequestError,
    InvalidSignatureError,
    MalformedSignatureHeaderError,
    MissingSignatureError,
    NotFoundError,
    TimestampOutOfWindowError,
)
from relay.keys import CLOCK, SETTINGS
from relay.words import english

__all__ = ["BOLT", "SLACK_WINDOW_SEC", "handle_slack_events", "register", "register_human_paths"]

log = logging.getLogger("care_relay.slack")

BOLT = web.AppKey("slack_bolt", AsyncApp)


#: how far X-Slack-Request-Timestamp may be from now, as Slack's own verifier allows
SLACK_WINDOW_SEC = 300
_SLACK_TS = re.compile(r"[0-9]{1,10}", re.ASCII)
_SLACK_SIG = re.compile(r"v0=[0-9a-fA-F]{64}", re.ASCII)


async def handle_slack_events(request: web.Request) -> web.Response:
    """`POST /slack/events`: Slack's signature checked over the raw bytes, then Bolt dispatches.

    The check runs here first (slack_sdk's verifier; Bolt checks again) so that nothing
    unsigned is parsed: garbled headers, bodies and charsets get the contract's 4xx, not
    Bolt's 500 or its own error shapes.
    """
    settings = request.app[SETTINGS]
    body = await read_body(request, settings.relay_max_body_bytes)
    timestamp = request.headers.get("X-Slack-Request-Timestamp", "")
    signature = request.headers.get("X-Slack-Signature", "")
    if not timestamp or not signature:
        raise MissingSignatureError("Slack requests carry X-Slack-Request-Timestamp and X-Slack-Signature.")
    if not _SLACK_TS.fullmatch(timestamp) or not _SLACK_SIG.fullmatch(signature):
        raise MalformedSignatureHeaderError("X-Slack-Request-Timestamp or X-Slack-Signature is not in Slack's form.")
    skew = abs(request.app[CLOCK]() - int(timestamp))
    if skew > SLACK_WINDOW_SEC:
        raise TimestampOutOfWindowError(
            f"X-Slack-Request-Timestamp is {int(skew)} s off the relay's clock (Slack allows 300 s)."
        )
    secret = settings.slack_signing_secret
    if not secret:  # never reached (the route is mounted with a secret); an empty one must not verify
        raise InvalidSignatureError("This relay has no Slack signing secret.")
    try:
        valid = SignatureVerifier(secret).is_valid(body, timestamp, signature)
    except UnicodeDecodeError:  # the verifier reads the body as UTF-8, as Slack sends it
        raise BadRequestError("The body is not UTF-8 text; this is not a request Slack sends.") from None
    if not valid:
        raise InvalidSignatureError("X-Slack-Signature does not match this app's signing secret.")
    unreadable = BadRequestError("This is not a request Slack sends: the body or its charset cannot be read.")
    try:
        # the body read above, decoded by its charset and parsed (form, `payload` JSON) by Bolt
        bolt_request = await to_bolt_request(request)
        answer = await request.app[BOLT].async_dispatch(bolt_request)
    except (ValueError, TypeError, AttributeError, LookupError) as exc:  # UnicodeDecodeError is a ValueError
        log.warning("slack request not readable: %s", type(exc).__name__)
        raise unreadable from None
    if answer.status == 404:
        raise NotFoundError("This relay does not handle that kind of Slack request.")
    if answer.status >= 500:
        log.warning("slack request answered %d by the dispatcher", answer.status)
        raise unreadable
    return await to_aiohttp_response(answer)


def _field(value: Any, key: str) -> str:
    """`value[key]` as a string when `value` is an object; "" for any other shape."""
    return str(value.get(key) or "") if isinstance(value, Mapping) else ""


def _user(body: Mapping[str, Any]) -> str:
    return _field(body.get("user"), "id")


def _value(body: Mapping[str, Any]) -> str:
    actions = body.get("actions")
    return _field(actions[0], "value") if isinstance(actions, list) and actions else ""


async def _tell(client: AsyncWebClient, body: Mapping[str, Any], text: str | None) -> None:
    """An ephemeral line to the person who pressed (only they see it)."""
    channel = _field(body.get("container"), "channel_id") or _field(body.get("channel"), "id")
    if not (text and channel and _user(body)):
        return
    try:
        await client.chat_postEphemeral(channel=channel, user=_user(body), text=text)
    except Exception as exc:
        log.warning("slack ephemeral answer failed: %s", type(exc).__name__)


async def _join(flow: SlackAnswers, body: Mapping[str, Any], client: AsyncWebClient, respond: Any) -> None:
    """The Join button: the request becomes the thanks (without its button), or an ephemeral line says why not."""
    try:
        joined, text = await flow.join(_user(body), _value(body))
    except Exception as exc:
        log.warning("slack join failed: %s", type(exc).__name__)
        joined, text = False, TRY_AGAIN
    if joined:
        try:
            await respond(replace_original=True, text=text, blocks=blocks.joined_blocks(text))
            return
        except Exception as exc:
            log.warning("slack join answer failed: %s", type(exc).__name__)
    await _tell(client, body, text)


Modal = dict[str, Any]


async def _no_modal(answer: Awaitable[str | None]) -> tuple[str | None, Modal | None]:
    return await answer, None


async def _press(
    what: str, body: Mapping[str, Any], client: AsyncWebClient, answer: Awaitable[tuple[str | None, Modal | None]]
) -> None:
    """A button's answer: the modal it opens, else the ephemeral words; a failure asks to try again."""
    try:
        text, modal = await answer
        if modal is not None:
            await client.views_open(trigger_id=body.get("trigger_id"), view=modal)
    except Exception as exc:
        log.warning("slack %s failed: %s", what, type(exc).__name__)
        text = english()._(TRY_AGAIN)
    await _tell(client, body, text)


async def _submit(what: str, ack: Any, block: str, answer: Awaitable[dict[str, Any]]) -> None:
    """A modal's submission, acked with its answer; a failure shows "try again" on `block`."""
    try:
        response = await answer
    except Exception as exc:
        log.warning("slack %s failed: %s", what, type(exc).__name__)
        response = {"response_action": "errors", "errors": {block: english()._(TRY_AGAIN)}}
    await ack(**response)


def register_human_paths(bolt: AsyncApp, flow: SlackAnswers) -> None:
    """ "Not now" and "Ask someone else" (CONTRACT section 10): every listener acks, none raises."""

    @bolt.action(blocks.PASS_ACTION)
    async def handle_pass(ack: Any, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        await _press("pass", body, client, _no_modal(flow.press_pass(_user(body), _value(body))))

    @bolt.action(blocks.ASK_ACTION)
    async def handle_ask(ack: Any, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        await _press("ask", body, client, flow.press_ask(_user(body), _value(body)))

    @bolt.view(blocks.ASK_MODAL)
    async def handle_asked(ack: Any, body: dict[str, Any], view: dict[str, Any]) -> None:
        await _submit("ask submission", ack, blocks.ASK_BLOCK, flow.submit_ask(_user(body), view))


def register(bolt: AsyncApp, flow: SlackAnswers) -> None:
    """The listeners: every one acks, none raises."""
    register_human_paths(bolt, flow)

    @bolt.action(re.compile(blocks.ACK_ACTION_PATTERN))
    async def handle_ack(ack: Any, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        await _press("ack", body, client, _no_modal(flow.press_ack(_user(body), _value(body))))

    @bolt.action(blocks.DONE_ACTION)
    async def handle_close(ack: Any, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        await _press("close", body, client, flow.press_close(_user(body), _value(body)))

    @bolt.action(blocks.JOIN_ACTION)
    async def handle_join(ack: Any, body: dict[str, Any], client: AsyncWebClient, respond: Any) -> None:
        await ack()
        await _join(flow, body, client, respond)

    @bolt.action(blocks.OPEN_ACTION)
    async def handle_open(ack: Any) -> None:
        await ack()  # a link button: Slack opens the URL; nothing to record

    @bolt.view(blocks.DONE_MODAL)
    async def handle_done(ack: Any, body: dict[str, Any], view: dict[str, Any]) -> None:
        await _submit("done", ack, blocks.OUTCOME_BLOCK, flow.submit_close(_user(body), view))

    @bolt.command("/care")
    async def handle_care(ack: Any, command: dict[str, Any]) -> None:
        try:
            text = await flow.care(str(command.get("user_id") or ""), str(command.get("text") or ""))
        except Exception as exc:
            log.warning("slack /care failed: %s", type(exc).__name__)
            text = english()._(TRY_AGAIN)
        await ack(text=text, response_type="ephemeral")
