"""Bearer tokens (admin, metrics), compared in constant time, and who an admin token names.

An admin token is one of RELAY_ADMIN_TOKENS (the admin, unnamed: "admin" in the console) or
one of RELAY_ADMINS (`name:token`: that admin, whose name is recorded as `by` wherever an
action takes one; a request cannot name someone else).
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable

from aiohttp import web

from relay.errors import ForbiddenError, UnauthorizedError
from relay.keys import SETTINGS
from relay.settings import Settings

#: the name a RELAY_ADMIN_TOKENS token signs in to the console with
UNNAMED_ADMIN = "admin"
#: the admin a request's bearer names (None: an unnamed RELAY_ADMIN_TOKENS token)
ADMIN_NAME = web.RequestKey("admin_name", str)


def named_admin(settings: Settings, given: bytes) -> str | None:
    """The RELAY_ADMINS name of this token, or None; every configured token is compared in constant time."""
    found: str | None = None
    for name, candidate in settings.relay_admins:
        if hmac.compare_digest(candidate.encode(), given):
            found = name
    return found


def admin_of(settings: Settings, token: str) -> str | None:
    """The admin this token belongs to: a RELAY_ADMINS name, "admin" for a RELAY_ADMIN_TOKENS token,
    None for neither (every token compared in constant time, whatever matches)."""
    given = token.encode("utf-8", "surrogateescape")
    name = named_admin(settings, given)
    unnamed = False
    for candidate in settings.relay_admin_tokens:
        unnamed |= hmac.compare_digest(candidate.encode(), given)
    return name or (UNNAMED_ADMIN if unnamed else None)


def admin_tokens(settings: Settings) -> tuple[str, ...]:
    """Every admin token: RELAY_ADMIN_TOKENS and RELAY_ADMINS'."""
    return (*settings.relay_admin_tokens, *(token for _, token in settings.relay_admins))


def require_admin(request: web.Request) -> str | None:
    """401 when no bearer is given, 403 when it is no admin token. The RELAY_ADMINS name of
    the token (also kept as `request[ADMIN_NAME]`), or None for a RELAY_ADMIN_TOKENS token."""
    settings = request.app[SETTINGS]
    name = named_admin(settings, _require_bearer(request, admin_tokens(settings), "admin"))
    if name is not None:
        request[ADMIN_NAME] = name
    return name


def require_metrics(request: web.Request) -> None:
    """401 when no bearer is given, 403 when it is neither one of RELAY_METRICS_TOKENS nor an admin token."""
    settings = request.app[SETTINGS]
    _require_bearer(request, (*settings.relay_metrics_tokens, *admin_tokens(settings)), "metrics")


def _require_bearer(request: web.Request, tokens: Iterable[str], what: str) -> bytes:
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
    return given
