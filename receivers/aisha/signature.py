"""The X-AISHA headers: verify an inbound AiSHA request, sign an outbound one.

Two forms (CONTRACT.md section 3): with ``X-AISHA-TIMESTAMP`` the signature covers
``"<ts>." + body``; without it (the body-signed PR8 sender, and this relay's callbacks and
workflow forwards) it covers the body alone and the body's own ``ts`` is the timestamp.
`verify` runs on the raw bytes, `check` on the parsed JSON.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from receivers.signing import HEX_SIGNATURE, TIMESTAMP, check_window, format_ts, hmac_hex, matches
from relay.errors import (
    HeaderMismatchError,
    InvalidSignatureError,
    MalformedSignatureHeaderError,
    MissingSignatureError,
    TimestampOutOfWindowError,
)
from relay.headers import header

SIGNATURE_HEADER = "X-AISHA-SIGNATURE"
TIMESTAMP_HEADER = "X-AISHA-TIMESTAMP"
EVENT_ID_HEADER = "X-AISHA-EVENT-ID"
_PREFIX = "sha256="


def verify(
    headers: Mapping[str, str],
    body: bytes,
    secrets: Sequence[str],
    *,
    now: int,
    max_window_sec: int,
) -> int | None:
    """Verify ``X-AISHA-SIGNATURE`` over the raw body; return the header timestamp or None.

    With ``X-AISHA-TIMESTAMP`` the window is checked here; the ``sha256=`` prefix is
    optional. Without it None is returned and the window is left to `check`, on the
    body's ``ts``.

    Raises MissingSignatureError, MalformedSignatureHeaderError, InvalidSignatureError or
    TimestampOutOfWindowError.
    """
    value = header(headers, SIGNATURE_HEADER)
    if value is None or not value.strip():
        raise MissingSignatureError(
            "The request has no X-AISHA-SIGNATURE header; send the hex HMAC-SHA256 of the raw body."
        )
    candidate = value[len(_PREFIX) :] if value.startswith(_PREFIX) else value
    if not HEX_SIGNATURE.fullmatch(candidate):
        raise MalformedSignatureHeaderError(
            "The X-AISHA-SIGNATURE header must be 64 hex characters, optionally prefixed by 'sha256='."
        )

    raw_ts = header(headers, TIMESTAMP_HEADER)
    if raw_ts is None:
        if not matches(body, [candidate], secrets):
            raise InvalidSignatureError(
                "The X-AISHA-SIGNATURE matches none of the configured secrets over the raw body; "
                "a signature over '<ts>.' and the body also needs its X-AISHA-TIMESTAMP header."
            )
        return None

    if not TIMESTAMP.fullmatch(raw_ts):
        raise MalformedSignatureHeaderError(
            "The X-AISHA-TIMESTAMP header must be Unix seconds written as 1 to 10 ASCII digits."
        )
    if not matches(raw_ts.encode("ascii") + b"." + body, [candidate], secrets):
        raise InvalidSignatureError(
            "The X-AISHA-SIGNATURE matches none of the configured secrets; sign '<ts>.' followed "
            "by the exact body bytes you send."
        )
    ts = int(raw_ts)
    check_window(ts, now=now, window_sec=max_window_sec, source="The X-AISHA-TIMESTAMP")
    return ts


def check(
    headers: Mapping[str, str],
    payload: Mapping[str, Any],
    *,
    header_ts: int | None,
    now: int,
    max_window_sec: int,
) -> None:
    """Check a verified AiSHA request against its parsed body.

    ``header_ts`` is what `verify` returned. When it is None (body-signed), the body's
    ``ts`` is the signed timestamp: it must be an ISO 8601 time with ``Z`` or an offset,
    within ``max_window_sec`` of ``now``. Then ``X-AISHA-EVENT-ID`` must equal the
    body's ``event_id``.

    Raises TimestampOutOfWindowError or HeaderMismatchError.
    """
    if header_ts is None:
        body_ts = _parse_iso8601(payload.get("ts"))
        if body_ts is None:
            # The signature covers this field, so it is the request's only timestamp: without
            # it the request cannot be placed in time, which is a 401, not a schema error.
            raise TimestampOutOfWindowError(
                "A body-signed request needs the body's ts as an ISO 8601 time with Z or an offset, "
                "such as 2026-01-26T12:34:56Z."
            )
        check_window(body_ts, now=now, window_sec=max_window_sec, source="The body's ts")

    event_id = header(headers, EVENT_ID_HEADER)
    if not event_id:
        raise HeaderMismatchError("The request has no X-AISHA-EVENT-ID header; send it with the body's event_id.")
    if event_id != payload.get("event_id"):
        raise HeaderMismatchError(
            "The X-AISHA-EVENT-ID header differs from the body's event_id; send the same id in both."
        )


def sign(body: bytes, secret: str, *, ts: int | None = None, event_id: str) -> dict[str, str]:
    """Return the headers that sign ``body`` for an X-AISHA receiver.

    With ``ts``: ``X-AISHA-TIMESTAMP`` and ``X-AISHA-SIGNATURE: sha256=<hex of "<ts>." +
    body>``. Without (the PR8 form, used for callbacks and workflow forwards, where the
    body's own ``ts`` is the timestamp): ``X-AISHA-SIGNATURE: <hex of body>``. Both carry
    ``X-AISHA-EVENT-ID: event_id``, which must equal the body's ``event_id``.
    """
    if ts is None:
        return {SIGNATURE_HEADER: hmac_hex(secret, body), EVENT_ID_HEADER: event_id}
    raw_ts = format_ts(ts)
    return {
        TIMESTAMP_HEADER: raw_ts,
        SIGNATURE_HEADER: _PREFIX + hmac_hex(secret, raw_ts.encode("ascii") + b"." + body),
        EVENT_ID_HEADER: event_id,
    }


def pr8_headers(body: bytes, secret: str | None, event_id: str) -> dict[str, str]:
    """Headers of a PR8-style POST: ``X-AISHA-EVENT-ID`` when known, the body signature when a secret is set."""
    headers = {"Content-Type": "application/json"}
    if event_id:
        headers[EVENT_ID_HEADER] = event_id
    if secret:
        headers[SIGNATURE_HEADER] = hmac_hex(secret, body)
    return headers


def _parse_iso8601(value: object) -> float | None:
    """Unix seconds of an ISO 8601 time with ``Z`` or an offset; None when it is not one."""
    if not isinstance(value, str):
        return None
    try:
        # Python 3.11's fromisoformat takes 'Z' and any number of fractional digits.
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        # A time without an offset is local to a clock we cannot see.
        return None
    return parsed.timestamp()
