"""The Slack channel: invitations out as DMs with buttons, answers in through Bolt.

Out (the outbox calls these): `SlackChannel.send` opens the DM (`conversations.open`)
and posts the invitation (`chat.postMessage`); `update` edits it after an answer
(`chat.update`). Both use slack_sdk's AsyncWebClient, the client Bolt's AsyncApp uses,
and sort Slack's answers: HTTP 429 (with its Retry-After), 5xx, timeouts and
connection errors are retried; an `ok: false` error such as user_not_found or
invalid_auth is permanent. slack_sdk retries none of those by itself (only a dropped
connection, once), so the outbox's backoff is the only retry policy.

In (`POST /slack/events`, mounted by `install`): Bolt with Slack's own signature check,
translated by slack_bolt's aiohttp adapter. A button's value names an invitation but is
not trusted alone: the pressing Slack user must be that invitation's agent. What an
answer causes (the message update for everyone invited, the sender's callback) is
queued by `relay.answers` in the same transaction and sent by the outbox, not here.
Listeners ack, never raise, and log an error's type only, never care data.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy.ext.asyncio import AsyncEngine

from inbox import lifecycle, store
from relay import compose
from relay.answers import Answers
from relay.channels import slack_blocks as blocks
from relay.delivery import Delivery, Invite, parse_retry_after, permanent, retry, sent
from relay.errors import (
    BadRequestError,
    InvalidSignatureError,
    MalformedSignatureHeaderError,
    MissingSignatureError,
    NotFoundError,
    TimestampOutOfWindowError,
)
from relay.state import ANSWERS, CHANNELS, ENGINE, SETTINGS
from relay.web.requests import read_body

__all__ = ["BOLT", "SlackAnswers", "SlackChannel", "classify", "handle_slack_events", "install", "register"]

log = logging.getLogger("care_relay.slack")

#: per Web API call; a send makes at most two, inside the outbox's 20 s attempt.
CALL_TIMEOUT_SEC = 8.0
#: `ok: false` errors worth another try; every other one is permanent.
RETRYABLE_ERRORS = frozenset({"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"})
_ERRORS = (SlackApiError, TimeoutError, aiohttp.ClientError, OSError)

BOLT = web.AppKey("slack_bolt", AsyncApp)

REFUSED = "This invitation was for someone else — thank you for caring."
NOT_AN_AGENT = "The care relay only answers people in its directory — thank you for caring."
ALREADY_DONE = "Someone already closed this loop — thank you for being there."
ALREADY_ACKED = "You already said you're here for this one — thank you."
NOT_OFFERED = "That answer is not offered for this invitation."
GONE = "This invitation is no longer here."
TRY_AGAIN = "That could not be recorded just now; please try again in a moment."


def classify(exc: BaseException) -> Delivery:
    """What a failed Web API call means for the outbox (no care data in the error)."""
    if isinstance(exc, SlackApiError):
        status = exc.response.status_code
        data = exc.response.data
        error = str(data.get("error") or f"HTTP {status}") if isinstance(data, dict) else f"HTTP {status}"
        if status == 429:
            return retry(f"slack {error}", retry_after=_retry_after(exc.response.headers))
        if status >= 500 or error in RETRYABLE_ERRORS:
            return retry(f"slack {error}")
        return permanent(f"slack {error}")
    if isinstance(exc, TimeoutError):
        return retry("slack timed out")
    return retry(f"slack connection error ({type(exc).__name__})")


def _retry_after(headers: Mapping[str, Any] | None) -> float | None:
    for key, value in (headers or {}).items():
        if key.lower() == "retry-after":
            value = value[0] if isinstance(value, list) and value else value
            return parse_retry_after(None if value is None else str(value))
    return None


class SlackChannel:
    """Invitations as Slack DMs. It owns its client's HTTP session (`close`)."""

    name = "slack"

    def __init__(self, client: AsyncWebClient, engine: AsyncEngine, *, timeout: float = CALL_TIMEOUT_SEC) -> None:
        self.client = client
        self._engine = engine
        self._timeout = timeout
        #: a bot's DM with a user keeps its id, so it is opened once per process.
        self._dms: dict[str, str] = {}

    async def send(self, invite: Invite) -> Delivery:
        user = invite.agent.slack_user
        if not user:
            return permanent("agent has no slack_user")
        try:
            channel = await self._open_dm(user)
            async with asyncio.timeout(self._timeout):
                answer = await self.client.chat_postMessage(
                    channel=channel,
                    text=blocks.invitation_text(invite),
                    blocks=blocks.invitation_blocks(invite),
                    unfurl_links=False,
                    unfurl_media=False,
                )
        except _ERRORS as exc:
            return classify(exc)
        return sent(f"{answer['channel']}:{answer['ts']}")

    async def update(self, invite: Invite, provider_id: str, text: str) -> Delivery:
        channel, _, ts = provider_id.partition(":")
        if not channel or not ts:
            return permanent("unreadable slack message id")
        notes, done = await self._notes(invite, text)
        try:
            async with asyncio.timeout(self._timeout):
                await self.client.chat_update(
                    channel=channel,
                    ts=ts,
                    text=blocks.answered_text(invite, notes),
                    blocks=blocks.answered_blocks(invite, notes, done=done),
                )
        except _ERRORS as exc:
            return classify(exc)
        return sent(provider_id)

    async def close(self) -> None:
        session = self.client.session
        if session is not None and not session.closed:
            await session.close()

    async def _open_dm(self, user: str) -> str:
        channel = self._dms.get(user)
        if channel is None:
            async with asyncio.timeout(self._timeout):
                answer = await self.client.conversations_open(users=user)
            channel = str(answer["channel"]["id"])
            self._dms[user] = channel
        return channel

    async def _notes(self, invite: Invite, text: str) -> tuple[list[str], bool]:
        """The loop as it stands, in words: every ack, then the done.

        Read when the update is sent rather than taken from `text` alone, so updates
        that go out of order (or several acks) still leave the message showing it all.
        """
        view = await store.invitation(self._engine, invite.invitation_id)
        if view is None:
            return [text], False
        detail = await store.loop_detail(self._engine, view.signal_id)
        done = detail["done"]
        notes = [
            compose.ack_note(a["display"], a["action"])
            for a in detail["acks"]
            if done is None or a["agent"] != done["agent"]
        ]
        if done is not None:
            notes.append(compose.done_note(done["display"], done["outcome"]))
        return notes or [text], view.loop_status == "done"


@dataclass(frozen=True)
class Claim:
    """Who pressed, and the invitation their button or modal names."""

    agent: dict[str, Any] | None
    view: store.InvitationView | None

    @property
    def holds(self) -> bool:
        """The pressing agent is the invitation's own and still active in the directory."""
        return (
            self.agent is not None
            and bool(self.agent["active"])
            and self.view is not None
            and self.view.agent_id == self.agent["id"]
        )


class SlackAnswers:
    """Button presses, the close modal and `/care`, each checked against the directory."""

    def __init__(self, answers: Answers, engine: AsyncEngine) -> None:
        self._answers = answers
        self._engine = engine

    async def claim(self, slack_user: str, invitation_id: int | None) -> Claim:
        """The invitation, and the agent behind `slack_user`.

        The invitation's own agent is matched first: the directory does not make
        slack_user unique, and a shared id must not hide the invitation's holder.
        """
        view = await store.invitation(self._engine, invitation_id) if invitation_id is not None else None
        holder = await store.agent_by(self._engine, id=view.agent_id) if view is not None else None
        if holder is not None and slack_user and holder["slack_user"] == slack_user:
            return Claim(holder, view)
        agent = await store.agent_by(self._engine, slack_user=slack_user) if slack_user else None
        return Claim(agent, view)

    async def _refuse(self, claim: Claim, what: str) -> None:
        await self._answers.refuse(
            signal_id=claim.view.signal_id if claim.view else None,
            agent_id=claim.agent["id"] if claim.agent else None,
            via="slack",
            reason=f"slack {what} by an agent no longer active"
            if claim.agent is not None and not claim.agent["active"]
            else f"slack {what} by someone other than the invitation's agent",
        )

    def _invite(self, claim: Claim) -> Invite | None:
        """None once retention purged the signal: the answer is then too late to take."""
        assert claim.view is not None
        return self._answers.invite_from(claim.view, claim.agent)

    async def press_ack(self, slack_user: str, value: str) -> str | None:
        """A response button: the ephemeral text to show, or None when the ack is recorded."""
        parsed = blocks.parse_ack_value(value)
        claim = await self.claim(slack_user, parsed[0] if parsed else None)
        if parsed is None or not claim.holds or claim.view is None or claim.agent is None:
            await self._refuse(claim, "ack")
            return REFUSED
        invite = self._invite(claim)
        if invite is None:
            return GONE
        responses = invite.responses
        if not 1 <= parsed[1] <= len(responses):
            return NOT_OFFERED
        result = await self._answers.ack(
            signal_id=claim.view.signal_id, agent_id=claim.agent["id"], action=responses[parsed[1] - 1], via="slack"
        )
        return {
            lifecycle.RECORDED: None,
            lifecycle.ALREADY: ALREADY_ACKED,
            lifecycle.ALREADY_DONE: ALREADY_DONE,
            lifecycle.NOT_INVITED: REFUSED,
        }.get(result.outcome, GONE)

    async def press_close(self, slack_user: str, value: str) -> tuple[str | None, dict[str, Any] | None]:
        """The "Close the loop" button: (ephemeral text, None) or (None, the modal to open)."""
        claim = await self.claim(slack_user, blocks.parse_id(value))
        if not claim.holds or claim.view is None:
            await self._refuse(claim, "close")
            return REFUSED, None
        if claim.view.loop_status == "done":
            return ALREADY_DONE, None
        invite = self._invite(claim)
        return (GONE, None) if invite is None else (None, blocks.done_modal(invite))

    async def submit_close(self, slack_user: str, view: Mapping[str, Any]) -> dict[str, Any]:
        """The modal's submission: the `ack(...)` arguments (empty closes the modal)."""
        claim = await self.claim(slack_user, blocks.parse_id(str(view.get("private_metadata") or "")))
        if not claim.holds or claim.view is None or claim.agent is None:
            await self._refuse(claim, "done")
            return {"response_action": "update", "view": blocks.message_view(REFUSED)}
        values = (view.get("state") or {}).get("values") or {}
        picked = ((values.get(blocks.OUTCOME_BLOCK) or {}).get(blocks.OUTCOME_BLOCK) or {}).get("selected_option") or {}
        outcome = picked.get("value")
        note = str(((values.get(blocks.NOTE_BLOCK) or {}).get(blocks.NOTE_BLOCK) or {}).get("value") or "").strip()
        invite = self._invite(claim)
        if invite is None:
            return {"response_action": "update", "view": blocks.message_view(GONE)}
        if outcome not in blocks.outcome_choices(invite):
            return {"response_action": "errors", "errors": {blocks.OUTCOME_BLOCK: "Pick how it ended."}}
        if len(note) > blocks.NOTE_MAX:
            too_long = f"Keep the note under {blocks.NOTE_MAX} characters."
            return {"response_action": "errors", "errors": {blocks.NOTE_BLOCK: too_long}}
        result = await self._answers.done(
            signal_id=claim.view.signal_id, agent_id=claim.agent["id"], outcome=str(outcome), note=note, via="slack"
        )
        if result.outcome == lifecycle.RECORDED:
            return {}
        text = ALREADY_DONE if result.outcome == lifecycle.ALREADY_DONE else GONE
        return {"response_action": "update", "view": blocks.message_view(text)}

    async def list_open(self, slack_user: str) -> str:
        """`/care`: this agent's own open invitations, nobody else's."""
        agent = await store.agent_by(self._engine, slack_user=slack_user) if slack_user else None
        if agent is None or not agent["active"]:
            return NOT_AN_AGENT
        views = await store.open_invitations(self._engine, agent["id"])
        items = [(self._answers.invite_from(v, agent), v.loop_status) for v in views]
        return blocks.open_list([(invite, status) for invite, status in items if invite is not None])


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


def register(bolt: AsyncApp, flow: SlackAnswers) -> None:
    """The listeners: every one acks, none raises."""

    @bolt.action(re.compile(blocks.ACK_ACTION_PATTERN))
    async def handle_ack(ack: Any, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        try:
            text = await flow.press_ack(_user(body), _value(body))
        except Exception as exc:
            log.warning("slack ack failed: %s", type(exc).__name__)
            text = TRY_AGAIN
        await _tell(client, body, text)

    @bolt.action(blocks.DONE_ACTION)
    async def handle_close(ack: Any, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        try:
            text, modal = await flow.press_close(_user(body), _value(body))
            if modal is not None:
                await client.views_open(trigger_id=body.get("trigger_id"), view=modal)
        except Exception as exc:
            log.warning("slack close failed: %s", type(exc).__name__)
            text = TRY_AGAIN
        await _tell(client, body, text)

    @bolt.action(blocks.OPEN_ACTION)
    async def handle_open(ack: Any) -> None:
        await ack()  # a link button: Slack opens the URL; nothing to record

    @bolt.view(blocks.DONE_MODAL)
    async def handle_done(ack: Any, body: dict[str, Any], view: dict[str, Any]) -> None:
        try:
            response = await flow.submit_close(_user(body), view)
        except Exception as exc:
            log.warning("slack done failed: %s", type(exc).__name__)
            response = {"response_action": "errors", "errors": {blocks.OUTCOME_BLOCK: TRY_AGAIN}}
        await ack(**response)

    @bolt.command("/care")
    async def handle_care(ack: Any, command: dict[str, Any]) -> None:
        try:
            text = await flow.list_open(str(command.get("user_id") or ""))
        except Exception as exc:
            log.warning("slack /care failed: %s", type(exc).__name__)
            text = TRY_AGAIN
        await ack(text=text, response_type="ephemeral")


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
    skew = abs(time.time() - int(timestamp))
    if skew > SLACK_WINDOW_SEC:
        raise TimestampOutOfWindowError(
            f"X-Slack-Request-Timestamp is {int(skew)} s off the relay's clock (Slack allows 300 s)."
        )
    try:
        valid = SignatureVerifier(settings.slack_signing_secret).is_valid(body, timestamp, signature)
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


def install(app: web.Application) -> None:
    """Mount `/slack/events` and, at start-up (after `_services`), the client, Bolt and the channel."""
    app.cleanup_ctx.append(_slack)
    app.router.add_post("/slack/events", handle_slack_events)


async def _slack(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    # One session for the channel and Bolt's per-request clients; slack_sdk applies its own
    # `timeout` only to sessions it creates, so the bound is set here as well.
    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=CALL_TIMEOUT_SEC))
    base_url = settings.slack_api_url if settings.slack_api_url.endswith("/") else settings.slack_api_url + "/"
    client = AsyncWebClient(
        token=settings.slack_bot_token, base_url=base_url, timeout=int(CALL_TIMEOUT_SEC), session=session
    )
    try:
        bolt = AsyncApp(signing_secret=settings.slack_signing_secret, client=client, process_before_response=True)
        register(bolt, SlackAnswers(app[ANSWERS], app[ENGINE]))
    except BaseException:
        await session.close()
        raise
    app[BOLT] = bolt
    # `_services` closes every channel after the outbox stopped; that closes this session.
    app[CHANNELS]["slack"] = SlackChannel(client, app[ENGINE])
    yield
