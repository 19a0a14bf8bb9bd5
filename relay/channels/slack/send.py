"""Slack's send half: invitations out as DMs with buttons, edited after an answer.

`SlackChannel.send` opens the DM (`conversations.open`) and posts the invitation
(`chat.postMessage`); `update` edits it after an answer (`chat.update`). Both use
slack_sdk's AsyncWebClient, the client Bolt's AsyncApp uses, and sort Slack's answers:
HTTP 429 (with its Retry-After), 5xx, timeouts and connection errors are retried; an
`ok: false` error such as user_not_found or invalid_auth is permanent. slack_sdk retries
none of those by itself (only a dropped connection, once), so the outbox's backoff is the
only retry policy. It knows no storage: the outbox hands it the invite and the loop.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from relay import compose
from relay.channels.slack import blocks
from relay.delivery import Delivery, Invite, Join, LoopSnapshot, parse_retry_after, permanent, retry, sent
from relay.headers import header

__all__ = ["CALL_TIMEOUT_SEC", "RETRYABLE_ERRORS", "SlackChannel", "classify"]

#: per Web API call; a send makes at most two, inside the outbox's 20 s attempt.
CALL_TIMEOUT_SEC = 8.0
#: `ok: false` errors worth another try; every other one is permanent.
RETRYABLE_ERRORS = frozenset({"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"})
#: Slack's `error` values are snake_case codes ("channel_not_found")
_ERROR_CODE = re.compile(r"[a-z0-9_.]{1,64}")
_ERRORS = (SlackApiError, TimeoutError, aiohttp.ClientError, OSError)


def classify(exc: BaseException) -> Delivery:
    """What a failed Web API call means for the outbox (no care data in the error)."""
    if isinstance(exc, SlackApiError):
        status = exc.response.status_code
        data = exc.response.data
        error = str(data.get("error") or "") if isinstance(data, dict) else ""
        if not _ERROR_CODE.fullmatch(error):  # kept as last_error: a code, never text an endpoint made up
            error = f"HTTP {status}"
        if status == 429:
            return retry(f"slack {error}", retry_after=_retry_after(exc.response.headers))
        if status >= 500 or error in RETRYABLE_ERRORS:
            return retry(f"slack {error}")
        return permanent(f"slack {error}")
    if isinstance(exc, TimeoutError):
        return retry("slack timed out")
    return retry(f"slack connection error ({type(exc).__name__})")


def _retry_after(headers: Mapping[str, Any] | None) -> float | None:
    value = header(headers or {}, "Retry-After")
    first = value[0] if isinstance(value, list) and value else value
    return parse_retry_after(None if first is None else str(first))


class SlackChannel:
    """Invitations as Slack DMs. It owns its client's HTTP session (`close`)."""

    name = "slack"

    def __init__(self, client: AsyncWebClient, *, timeout: float = CALL_TIMEOUT_SEC) -> None:
        self.client = client
        self._timeout = timeout
        #: a bot's DM with a user keeps its id, so it is opened once per process.
        self._dms: dict[str, str] = {}

    async def send(self, invite: Invite) -> Delivery:
        """Open the agent's DM and post the invitation with its buttons."""
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

    async def update(self, invite: Invite, provider_id: str, loop: LoopSnapshot) -> Delivery:
        """Edit a sent invitation to show who answered (and drop its buttons once done)."""
        channel, _, ts = provider_id.partition(":")
        if not channel or not ts:
            return permanent("unreadable slack message id")
        notes = compose.update_notes(loop, invite.words)
        if not loop.acks and loop.done is None:  # nobody answered yet (a joined signal): the buttons stay
            shown = blocks.waiting_blocks(invite, notes)
        else:
            shown = blocks.answered_blocks(invite, notes, done=loop.status == "done")
        try:
            async with asyncio.timeout(self._timeout):
                await self.client.chat_update(
                    channel=channel, ts=ts, text=blocks.answered_text(invite, notes), blocks=shown
                )
        except _ERRORS as exc:
            return classify(exc)
        return sent(provider_id)

    async def ask_to_join(self, join: Join) -> Delivery:
        """A DM with a Join button: the agent confirms this Slack account is theirs by pressing it."""
        user = join.agent.slack_user
        if not user:
            return permanent("agent has no slack_user")
        try:
            channel = await self._open_dm(user)
            async with asyncio.timeout(self._timeout):
                answer = await self.client.chat_postMessage(
                    channel=channel, text=compose.join_slack_text(join), blocks=blocks.join_blocks(join)
                )
        except _ERRORS as exc:
            return classify(exc)
        return sent(f"{answer['channel']}:{answer['ts']}")

    async def close(self) -> None:
        """Close the client's HTTP session (shared with Bolt's per-request clients)."""
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
