"""Slack over Socket Mode: the same Bolt app and listeners, reached over a WebSocket Slack opens.

With `SLACK_APP_TOKEN` (`xapp-…`) slack-bolt's `AsyncSocketModeHandler` asks
`apps.connections.open` (through the channel's own Web API client, so at `SLACK_API_URL`)
for a WebSocket URL and dispatches every envelope to the Bolt app `POST /slack/events`
uses: a press is answered the same way whichever road it took, and no public URL is needed.

`start` returns at once: the connection is made in the background (slack_sdk retries until
it succeeds), so a Slack that cannot be reached does not stop the relay from serving.
`stop` closes the socket before the channel's HTTP session closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp

__all__ = ["SocketMode", "start", "stop"]

log = logging.getLogger("care_relay.slack")


@dataclass
class SocketMode:
    """A running Socket Mode handler and the task that connects it."""

    handler: AsyncSocketModeHandler
    connecting: asyncio.Task[None]


async def _connect(handler: AsyncSocketModeHandler) -> None:
    await handler.connect_async()  # type: ignore[no-untyped-call]  # slack_bolt leaves it unannotated
    log.info("slack socket mode connected")


def start(bolt: AsyncApp, app_token: str) -> SocketMode:
    """Connect Bolt to Slack over Socket Mode, in the background; the token is never logged."""
    # the SDK's logger (Bolt's, kept at INFO): its DEBUG lines would carry every payload
    handler = AsyncSocketModeHandler(bolt, app_token, logger=bolt.logger, web_client=bolt.client)
    return SocketMode(handler, asyncio.create_task(_connect(handler), name="slack-socket-mode"))


async def stop(socket: SocketMode | None) -> None:
    """Stop connecting, then close the WebSocket and its own session (the channel's stays open)."""
    if socket is None:
        return
    socket.connecting.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await socket.connecting
    try:
        await socket.handler.close_async()  # type: ignore[no-untyped-call]  # unannotated in slack_bolt
    except Exception as exc:
        log.warning("slack socket mode close failed: %s", type(exc).__name__)
