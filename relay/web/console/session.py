"""The console's signed session cookie, its CSRF token, and dev mode's one-time sign-in tokens.

The cookie holds who signed in, a fingerprint of the token they signed in with, the
session's own random id, and the CSRF token every form carries; it is signed (itsdangerous)
with RELAY_LINK_SECRETS under a salt of its own, so no action link or status token opens it,
and it lasts 8 hours from sign-in. Before sign-in it holds only a CSRF token, for the sign-in
form itself. A session stays valid while its admin's token is still configured (changing
RELAY_ADMINS or RELAY_ADMIN_TOKENS ends the sessions made with the old token) and until its
admin signs out of it: the sign-out is kept in storage by the session's id
(`relay.console_sessions`), so a copy of the cookie opens nothing afterwards, on any replica.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from itsdangerous import BadSignature, URLSafeTimedSerializer

from relay.settings import Settings
from relay.web.auth import UNNAMED_ADMIN, admin_of, admin_tokens

COOKIE = "care_relay_console"
COOKIE_PATH = "/console"
SESSION_SALT = "care-relay.console-session.v1"
MAX_AGE_SEC = 8 * 3600
#: what a session signed in with a dev one-time token holds instead of a token's fingerprint
DEV_ONCE = "dev-once"
#: a one-time token printed by `serve --dev` works once, within this many seconds
ONCE_MAX_AGE_SEC = 12 * 3600
#: a cookie far longer than a session's is not ours
COOKIE_MAX_CHARS = 1024


def fingerprint(token: str) -> str:
    """A short digest that tells which token a session was made with (the token itself is never kept)."""
    return hashlib.sha256(b"care-relay.console-admin\0" + token.encode("utf-8", "surrogateescape")).hexdigest()[:24]


@dataclass(frozen=True)
class Session:
    """One browser's session: the CSRF token, and once signed in, who and with which token."""

    csrf: str
    name: str | None = None
    key: str | None = None
    #: a signed-in session's own id: what a sign-out ends
    sid: str | None = None


class OneTimeTokens:
    """Sign-in tokens that work once (dev mode's banner link); kept in memory as digests only."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._pending: dict[str, float] = {}

    def issue(self) -> str:
        token = secrets.token_urlsafe(24)
        self._pending[_digest(token)] = self._clock() + ONCE_MAX_AGE_SEC
        return token

    def take(self, token: str) -> bool:
        """True once for a token issued here and not yet used or expired."""
        now = self._clock()
        self._pending = {k: until for k, until in self._pending.items() if until > now}
        given = _digest(token)
        match = next((k for k in self._pending if hmac.compare_digest(k, given)), None)
        if match is None:
            return False
        del self._pending[match]
        return True


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


class Sessions:
    """Reads and writes the session cookie for one configuration."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        # itsdangerous derives the key from each secret and this salt; the newest secret signs
        self._serializer = URLSafeTimedSerializer(list(settings.relay_link_secrets), salt=SESSION_SALT)

    def read(self, request: web.Request) -> Session | None:
        """The session the cookie holds; None for none, a tampered one or one older than 8 hours."""
        return self.load(request.cookies.get(COOKIE, ""))

    def load(self, raw: str) -> Session | None:
        """The session a cookie's value holds (as `read`)."""
        if not raw or len(raw) > COOKIE_MAX_CHARS:
            return None
        try:
            data: Any = self._serializer.loads(raw, max_age=MAX_AGE_SEC)
        except BadSignature:  # SignatureExpired is one
            return None
        if not isinstance(data, dict) or not isinstance(data.get("c"), str) or not data["c"]:
            return None
        name, key, sid = data.get("n"), data.get("k"), data.get("s")
        # a signed-in cookie without its id (made before sign-outs were kept) cannot be ended: sign in again
        if not (isinstance(name, str) and isinstance(key, str) and isinstance(sid, str) and sid):
            return Session(csrf=data["c"])
        return Session(csrf=data["c"], name=name, key=key, sid=sid)

    def admin(self, session: Session | None) -> str | None:
        """Who the session is signed in as, while the token it was made with is still an admin's."""
        if session is None or session.name is None or session.key is None:
            return None
        if session.key == DEV_ONCE:
            return UNNAMED_ADMIN if self._settings.dev and session.name == UNNAMED_ADMIN else None
        for token in admin_tokens(self._settings):
            if hmac.compare_digest(fingerprint(token), session.key):
                return session.name if admin_of(self._settings, token) == session.name else None
        return None

    @staticmethod
    def fresh(name: str | None = None, key: str | None = None) -> Session:
        """A new session with a new CSRF token (signing in and out always makes one), and a new id once signed in."""
        sid = secrets.token_urlsafe(16) if name is not None and key is not None else None
        return Session(csrf=secrets.token_urlsafe(24), name=name, key=key, sid=sid)

    def write(self, response: web.StreamResponse, session: Session) -> None:
        data: dict[str, str] = {"c": session.csrf}
        if session.name is not None and session.key is not None and session.sid is not None:
            data |= {"n": session.name, "k": session.key, "s": session.sid}
        response.set_cookie(
            COOKIE,
            self._serializer.dumps(data),
            max_age=MAX_AGE_SEC,
            path=COOKIE_PATH,
            httponly=True,
            samesite="Strict",
            secure=not self._settings.dev,
        )
