"""The Slack channel: invitations out as DMs with buttons (`send`), answers in through Bolt (`inbound`).

`blocks` is the Block Kit both halves speak. The registry (`relay.channels`) mounts
`ROUTES` and calls `open_channels` once, before the outbox starts.
"""

from __future__ import annotations

import logging

import aiohttp
from aiohttp import web
from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from relay.answers import Answers
from relay.channels.slack.inbound import BOLT, SlackAnswers, handle_slack_events, register
from relay.channels.slack.send import CALL_TIMEOUT_SEC, SlackChannel
from relay.delivery import Channel
from relay.invitations import Invitations
from relay.settings import Settings

__all__ = ["ROUTES", "open_channels"]

#: Slack's requests, mounted by the channel registry.
ROUTES = (("POST", "/slack/events", handle_slack_events),)


async def open_channels(
    app: web.Application, settings: Settings, answers: Answers, invitations: Invitations
) -> list[Channel]:
    """The client, Bolt with its listeners (under `BOLT`) and the channel; the channel owns the session."""
    # One session for the channel and Bolt's per-request clients; slack_sdk applies its own
    # `timeout` only to sessions it creates, so the bound is set here as well.
    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=CALL_TIMEOUT_SEC))
    base_url = settings.slack_api_url if settings.slack_api_url.endswith("/") else settings.slack_api_url + "/"
    try:
        client = AsyncWebClient(
            token=settings.slack_bot_token, base_url=base_url, timeout=int(CALL_TIMEOUT_SEC), session=session
        )
        bolt = AsyncApp(
            signing_secret=settings.slack_signing_secret,
            client=client,
            process_before_response=True,
            # without a logger of ours, Bolt copies the root logger's level onto its own, and at
            # DEBUG it logs what it answers Slack; under "slack_bolt" it is held back (relay/logs.py)
            logger=logging.getLogger("slack_bolt.AsyncApp"),
        )
        register(bolt, SlackAnswers(answers, invitations))
    except BaseException:
        await session.close()  # nothing owns the session yet
        raise
    app[BOLT] = bolt
    return [SlackChannel(client)]
