"""Bearer tokens (admin, metrics), compared in constant time."""

from __future__ import annotations

import hmac
from collections.abc import Iterable

from aiohttp import web

from relay.errors import ForbiddenError, UnauthorizedError
from relay.keys import SETTINGS


def require_admin(request: web.Request) -> None:
    """401 when no bearer is given, 403 when it is not one of RELAY_ADMIN_TOKENS."""
    _require_bearer(request, request.app[SETTINGS].relay_admin_tokens, "admin")


def require_metrics(request: web.Request) -> None:
    """401 when no bearer is given, 403 when it is neither one of RELAY_METRICS_TOKENS nor an admin token."""
    settings = request.app[SETTINGS]
    _require_bearer(request, (*settings.relay_metrics_tokens, *settings.relay_admin_tokens), "metrics")


def _require_bearer(request: web.Request, tokens: Iterable[str], what: str) -> None:
    header = request.headers.get("Authorization", "")
    if not header:
        # an admin route may also take a status token: the default detail names both
        raise (
            UnauthorizedError()
            if what == "admin"
            else UnauthorizedError(f"Send 'Authorization: Bearer <{what} token>'.")
        )
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise UnauthorizedError(f"Send 'Authorization: Bearer <{what} token>'.")
    # aiohttp decodes header bytes that are not UTF-8 with surrogateescape: keep them as sent
    given = token.strip().encode("utf-8", "surrogateescape")
    valid = False
    for candidate in tokens:
        valid |= hmac.compare_digest(candidate.encode(), given)
    if not valid:
        raise ForbiddenError(f"This {what} token is not valid.")
