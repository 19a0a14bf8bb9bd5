"""Refusals that come before any handler, from the URL alone."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from relay.errors import BadRequestError

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: what no stored id, name or token can contain, so a URL holding one names nothing
_UNSTORABLE = ("\x00",)


@web.middleware
async def unstorable_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse a URL whose path or query holds a NUL character (400), before any handler.

    No id, name or token the relay keeps can contain one (PostgreSQL text cannot hold it),
    so such a URL can only be a mistake or a probe; looking it up would reach the database
    with a value it refuses.
    """
    if any(mark in request.path or any(mark in v for v in request.query.values()) for mark in _UNSTORABLE):
        raise BadRequestError("The URL contains a NUL character; no id or name the relay keeps has one.")
    return await handler(request)
