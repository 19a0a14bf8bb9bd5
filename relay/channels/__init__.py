"""Channels: provider wire formats, and the one registry that builds them.

Each provider implements `relay.delivery.Channel` (the send half, which knows no storage)
and, where the provider answers, an inbound half that calls services. `add_routes` mounts
the inbound routes of the channels a configuration enables when the app is made;
`open_channels` builds every channel (and its client) once, before the outbox starts.
Nothing changes the channel map later: `relay.app` closes the channels after the outbox
stopped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from aiohttp import web

from relay.answers import Answers
from relay.channels import slack, twilio
from relay.channels.console import ConsoleChannel
from relay.delivery import Channel
from relay.invitations import Invitations
from relay.settings import Settings


def add_routes(app: web.Application, settings: Settings) -> None:
    """The provider callbacks of the enabled channels (Slack's events, Twilio's replies and statuses)."""
    routes = (*(slack.ROUTES if settings.slack_enabled else ()), *(twilio.ROUTES if settings.twilio_enabled else ()))
    for method, path, handler in routes:
        app.router.add_route(method, path, handler)
    if settings.twilio_enabled:
        twilio.prepare(app, settings)


async def open_channels(
    app: web.Application, settings: Settings, answers: Answers, invitations: Invitations
) -> dict[str, Channel]:
    """Every channel this configuration can send on, by name, with its client open."""
    opened: list[Channel] = [ConsoleChannel()] if settings.dev else []
    try:
        if settings.slack_enabled:
            opened += await slack.open_channels(app, settings, answers, invitations)
        if settings.twilio_enabled:
            opened += twilio.open_channels(settings)
    except BaseException:
        # the app never starts: what did open closes again, no client session is left behind
        await close_channels(opened)
        raise
    return {channel.name: channel for channel in opened}


async def close_channels(channels: Iterable[Channel]) -> None:
    """Close every channel that holds a client; one failing close leaves none of the others open."""
    closers = [close for channel in channels if (close := getattr(channel, "close", None)) is not None]
    await asyncio.gather(*(close() for close in closers), return_exceptions=True)
