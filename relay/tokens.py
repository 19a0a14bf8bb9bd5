"""Signed tokens (itsdangerous): status tokens and action links.

Keys come from RELAY_LINK_SECRETS, oldest first; the newest signs, every one verifies,
so keys rotate without breaking links already sent. Each purpose has its own salt,
so a status token never opens an action link and the reverse.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from itsdangerous import BadSignature, SignatureExpired, Signer, URLSafeTimedSerializer
from itsdangerous.encoding import base64_encode
from itsdangerous.url_safe import URLSafeSerializerMixin

from relay.errors import ForbiddenError, LinkExpiredError


class _KeyCachingSigner(Signer):
    """itsdangerous derives the HMAC key from the secret on every sign and check; the
    derivation depends only on (salt, secret), so it is kept. One per intake request."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._derived: dict[bytes | None, bytes] = {}

    def derive_key(self, secret_key: str | bytes | None = None) -> bytes:
        cache_key = secret_key.encode() if isinstance(secret_key, str) else secret_key
        key = self._derived.get(cache_key)
        if key is None:
            key = self._derived[cache_key] = super().derive_key(secret_key)
        return key


#: JSON payloads up to this size are not compressed: their token is at most about 180
#: characters, well under the pages' cap (relay.web.form.TOKEN_MAX_CHARS)
SMALL_PAYLOAD_BYTES = 100


class _UncompressedSerializer(URLSafeTimedSerializer):
    """URL-safe timed tokens that skip itsdangerous' try at zlib for small payloads: there
    it saves a few characters at best (for an id that repeats itself), and the try cost
    about 50 µs a token (zlib sets up its window every time): most of a link's or consent
    page's cost. A larger payload (a long event id) is tried as before, so its token stays
    as short as it was and under the pages' length cap. A compressed token (a leading ".")
    loads either way."""

    def dump_payload(self, obj: Any) -> bytes:
        json = super(URLSafeSerializerMixin, self).dump_payload(obj)  # the JSON bytes, past the mixin's zlib
        if len(json) > SMALL_PAYLOAD_BYTES:
            return super().dump_payload(obj)
        return base64_encode(json)


STATUS_SALT = "care-relay.status.v1"
ACTION_SALT = "care-relay.action-link.v1"
CONSENT_SALT = "care-relay.actor-consent.v1"


@dataclass(frozen=True)
class Tokens:
    secrets: tuple[str, ...]
    link_max_age_sec: int

    @cached_property
    def _status_signer(self) -> Signer:
        # itsdangerous takes the keys oldest first and signs with the last one. A plain
        # signer over "source:event_id" (one per intake request) costs a third of a serializer.
        return _KeyCachingSigner(list(self.secrets), salt=STATUS_SALT, digest_method=hashlib.sha256)

    @cached_property
    def _action_serializer(self) -> URLSafeTimedSerializer:
        return _UncompressedSerializer(list(self.secrets), salt=ACTION_SALT)

    def _action(self) -> URLSafeTimedSerializer:
        return self._action_serializer

    def status_token(self, source: str, event_id: str) -> str:
        """A token that opens one event's status, without expiry."""
        value = base64.urlsafe_b64encode(f"{source}:{event_id}".encode()).rstrip(b"=")
        return self._status_signer.sign(value).decode("ascii")

    def read_status_token(self, token: str) -> tuple[str, str] | None:
        try:
            value = self._status_signer.unsign(token.encode("ascii"))
            source, _, event_id = base64.urlsafe_b64decode(value + b"=" * (-len(value) % 4)).decode().partition(":")
        except (BadSignature, ValueError, UnicodeError):
            return None
        return (source, event_id) if source and event_id else None

    @cached_property
    def _consent_serializer(self) -> URLSafeTimedSerializer:
        return _UncompressedSerializer(list(self.secrets), salt=CONSENT_SALT)

    def consent_token(self, source: str, event_id: str) -> str:
        """A token for one signal's consent page (CONTRACT section 10); expires with action links."""
        return self._consent_serializer.dumps({"s": source, "e": event_id})

    def read_consent_token(self, token: str) -> tuple[str, str]:
        """(source, event id) of a consent page; 410 when expired, 403 when tampered."""
        invalid = ForbiddenError("This link is not valid; open the consent link as the app showed it.")
        try:
            data: Any = self._consent_serializer.loads(token, max_age=self.link_max_age_sec)
        except SignatureExpired:
            raise LinkExpiredError() from None
        except BadSignature:
            raise invalid from None
        if not isinstance(data, dict) or not isinstance(data.get("s"), str) or not isinstance(data.get("e"), str):
            raise invalid
        return str(data["s"]), str(data["e"])

    def action_token(self, invitation_id: int) -> str:
        return self._action().dumps({"i": invitation_id})

    def read_action_token(self, token: str) -> int:
        """The invitation id in an action link; 410 when expired, 403 when tampered."""
        try:
            data: Any = self._action().loads(token, max_age=self.link_max_age_sec)
        except SignatureExpired:
            raise LinkExpiredError() from None
        except BadSignature:
            raise ForbiddenError("This link is not valid; open the link from your invitation as it was sent.") from None
        if not isinstance(data, dict) or not isinstance(data.get("i"), int):
            raise ForbiddenError("This link is not valid; open the link from your invitation as it was sent.")
        return int(data["i"])
