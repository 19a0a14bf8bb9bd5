"""Signed tokens (itsdangerous): status tokens and action links.

Keys come from RELAY_LINK_SECRETS, oldest first; the newest signs, every one verifies,
so keys rotate without breaking links already sent. Each purpose has its own salt,
so a status token never opens an action link and the reverse.
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, cast

from itsdangerous import BadSignature, SignatureExpired, Signer, TimestampSigner, URLSafeTimedSerializer
from itsdangerous.encoding import base64_encode, int_to_bytes
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


class _ClockedSigner(TimestampSigner):
    """itsdangerous' timed signer on the relay's clock (`create_app(clock=…)`), not on
    time.time(): a link's age is measured by the same clock as everything else the relay
    times, so a test drives it instead of waiting."""

    def __init__(self, *args: Any, clock: Callable[[], float], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._clock = clock

    def get_timestamp(self) -> int:
        return int(self._clock())

    def sign_at(self, value: bytes, at: int) -> bytes:
        """`sign`, stamped `at` (Unix seconds) rather than now: the same value and moment
        make the same token, whenever it is made."""
        sep = self.sep
        stamped = value + sep + base64_encode(int_to_bytes(at))
        return stamped + sep + self.get_signature(stamped)


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


#: how far ahead of this relay's clock a link's stamp may be and still open (replicas' clocks differ)
CLOCK_SKEW_SEC = 60

STATUS_SALT = "care-relay.status.v1"
ACTION_SALT = "care-relay.action-link.v1"
CONSENT_SALT = "care-relay.actor-consent.v1"


@dataclass(frozen=True)
class Tokens:
    secrets: tuple[str, ...]
    link_max_age_sec: int
    #: the relay's clock: when a link is made and how old it is when it comes back
    clock: Callable[[], float] = field(default=time.time)

    @cached_property
    def _status_signer(self) -> Signer:
        # itsdangerous takes the keys oldest first and signs with the last one. A plain
        # signer over "source:event_id" (one per intake request) costs a third of a serializer.
        return _KeyCachingSigner(list(self.secrets), salt=STATUS_SALT, digest_method=hashlib.sha256)

    def _timed(self, salt: str) -> URLSafeTimedSerializer:
        return _UncompressedSerializer(
            list(self.secrets), salt=salt, signer=_ClockedSigner, signer_kwargs={"clock": self.clock}
        )

    @cached_property
    def _action_serializer(self) -> URLSafeTimedSerializer:
        return self._timed(ACTION_SALT)

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
        return self._timed(CONSENT_SALT)

    def _opened(self, serializer: URLSafeTimedSerializer, token: str) -> Any:
        """The payload of a timed token no older than RELAY_LINK_MAX_AGE_SEC. One stamped up to
        CLOCK_SKEW_SEC ahead of this relay's clock opens too (another replica's clock, a little
        ahead, made it); SignatureExpired otherwise, BadSignature when tampered."""
        try:
            return serializer.loads(token, max_age=self.link_max_age_sec)
        except SignatureExpired as exc:  # raised only once the signature checked out
            signed, payload = exc.date_signed, exc.payload
            if signed is None or payload is None or not 0 < signed.timestamp() - self.clock() <= CLOCK_SKEW_SEC:
                raise
            return serializer.load_payload(payload)

    def consent_open(self, received_at: float) -> bool:
        """Whether the consent page of a signal received at `received_at` still opens."""
        return int(self.clock()) - max(0, int(received_at)) <= self.link_max_age_sec  # as itsdangerous counts

    def consent_token(self, source: str, event_id: str, received_at: float) -> str:
        """A token for one signal's consent page (CONTRACT section 10), stamped with the signal's
        arrival (Unix seconds): the 202 and every later status read show the same link, and it
        expires RELAY_LINK_MAX_AGE_SEC after the signal, with action links' age."""
        serializer = self._consent_serializer
        signer = cast(_ClockedSigner, serializer.make_signer())  # the signer `_timed` names
        payload = serializer.dump_payload({"s": source, "e": event_id})
        return signer.sign_at(payload, max(0, int(received_at))).decode("ascii")

    def read_consent_token(self, token: str) -> tuple[str, str]:
        """(source, event id) of a consent page; 410 when expired, 403 when tampered."""
        invalid = ForbiddenError("This link is not valid; open the consent link as the app showed it.")
        try:
            data: Any = self._opened(self._consent_serializer, token)
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
            data: Any = self._opened(self._action(), token)
        except SignatureExpired:
            raise LinkExpiredError() from None
        except BadSignature:
            raise ForbiddenError("This link is not valid; open the link from your invitation as it was sent.") from None
        if not isinstance(data, dict) or not isinstance(data.get("i"), int):
            raise ForbiddenError("This link is not valid; open the link from your invitation as it was sent.")
        return int(data["i"])
