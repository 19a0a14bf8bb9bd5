"""The Slack channel: invitations out as DMs with buttons (`send`), answers in through Bolt.

Answers come in on `POST /slack/events` (`inbound`), to Bolt's listeners, which hand each
payload to `flow` and show its outcome in the words `flow` gives it.

`blocks` is the Block Kit both halves speak; `home` is the App Home tab; `socket` carries
the same Bolt app over Socket Mode (`SLACK_APP_TOKEN`); `lookup` finds a user by email for
the command line. The registry (`relay.channels`) mounts `ROUTES` and calls
`open_channels` once, before the outbox starts; `relay.app` starts Socket Mode after that
(`start_socket_mode`) and stops it before the channels close (`stop_socket_mode`).
"""

from __future__ import annotations

import json
import logging

import aiohttp
import orjson
from aiohttp import web
from slack_bolt.async_app import AsyncApp
from slack_bolt.logger.messages import warning_client_prioritized_and_token_skipped
from slack_sdk.web.async_client import AsyncWebClient

from relay.answers import Answers
from relay.channels.slack import home, socket
from relay.channels.slack.flow import SlackAnswers
from relay.channels.slack.inbound import BOLT, handle_slack_events, register
from relay.channels.slack.send import CALL_TIMEOUT_SEC, SlackChannel
from relay.channels.slack.socket import SocketMode
from relay.delivery import Channel
from relay.invitations import Invitations
from relay.keys import ADDRESSES, DIRECTORY, INSTRUCTIONS
from relay.settings import Settings

__all__ = ["ROUTES", "SocketMode", "open_channels", "start_socket_mode", "stop_socket_mode"]

#: Slack's requests, mounted by the channel registry. Over Socket Mode with no signing
#: secret the route stays mounted and refuses every request as unsigned.
ROUTES = (("POST", "/slack/events", handle_slack_events),)

#: The SDK's logger, never below INFO. slack_sdk writes its DEBUG lines (every request's
#: JSON, so the whisper of every invitation) when its logger's *own* level is at DEBUG or
#: unset, whatever the handlers would let through: building that line alone cost about a
#: third of each chat.postMessage, and the line must never be written anyway (rule 5).
SDK_LOG = logging.getLogger("care_relay.slack.sdk")
SDK_LOG.setLevel(logging.INFO)


class _NotTheOperatorsConcern(logging.Filter):
    """Bolt reads SLACK_BOT_TOKEN from the environment by itself and then warns, at every
    start, that the client the relay gives it (which holds the token from the settings) wins
    over it: nothing an operator could or should change."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != warning_client_prioritized_and_token_skipped()


SDK_LOG.addFilter(_NotTheOperatorsConcern())


def _json_text(value: object) -> str:
    """A request's JSON body (every chat.postMessage): orjson, 2 µs where json took 14 for an invitation."""
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError:  # what orjson will not write (an integer past 64 bits): as json writes it
        return json.dumps(value)


async def open_channels(
    app: web.Application, settings: Settings, answers: Answers, invitations: Invitations
) -> list[Channel]:
    """The client, Bolt with its listeners (under `BOLT`) and the channel; the channel owns the session."""
    # One session for the channel and Bolt's per-request clients; slack_sdk applies its own
    # `timeout` only to sessions it creates, so the bound is set here as well.
    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=CALL_TIMEOUT_SEC), json_serialize=_json_text)
    base_url = settings.slack_api_url if settings.slack_api_url.endswith("/") else settings.slack_api_url + "/"
    try:
        client = AsyncWebClient(
            token=settings.slack_bot_token,
            base_url=base_url,
            timeout=int(CALL_TIMEOUT_SEC),
            session=session,
            logger=SDK_LOG,
        )
        # "" rather than None: Bolt would read SLACK_SIGNING_SECRET from the environment itself
        bolt = AsyncApp(
            signing_secret=settings.slack_signing_secret or "",
            client=client,
            process_before_response=True,
            logger=SDK_LOG,
        )
        register(
            bolt,
            SlackAnswers(answers, invitations, app[ADDRESSES], app.get(DIRECTORY), app.get(INSTRUCTIONS)),
        )
        home.register(bolt, invitations)
    except BaseException:
        await session.close()  # nothing owns the session yet
        raise
    app[BOLT] = bolt
    return [SlackChannel(client)]


def start_socket_mode(app: web.Application, settings: Settings) -> SocketMode | None:
    """With SLACK_APP_TOKEN, the channel's Bolt app over Socket Mode (connecting in the background)."""
    if not settings.slack_socket_mode or BOLT not in app or not settings.slack_app_token:
        return None
    return socket.start(app[BOLT], settings.slack_app_token)


async def stop_socket_mode(running: SocketMode | None) -> None:
    """Close the Socket Mode connection (before the channel's HTTP session closes)."""
    await socket.stop(running)
