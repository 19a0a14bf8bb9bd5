"""Admin bearer tokens, compared in constant time."""

from __future__ import annotations

import hmac

from aiohttp import web

from relay.errors import ForbiddenError, UnauthorizedError
from relay.keys import SETTINGS


def require_admin(request: web.Request) -> None:
    """401 when no bearer is given, 403 when it is not one of RELAY_ADMIN_TOKENS."""
    header = request.headers.get("Authorization", "")
    if not header:
        raise UnauthorizedError()
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise UnauthorizedError("Send 'Authorization: Bearer <admin token>'.")
    # aiohttp decodes header bytes that are not UTF-8 with surrogateescape: keep them as sent
    given = token.strip().encode("utf-8", "surrogateescape")
    valid = False
    for candidate in request.app[SETTINGS].relay_admin_tokens:
        valid |= hmac.compare_digest(candidate.encode(), given)
    if not valid:
        raise ForbiddenError("This admin token is not valid.")
