"""X-M3 and X-AISHA webhook signatures: verify inbound requests, sign outbound ones.

Pure functions over headers and raw bytes (CONTRACT.md section 3). Verification runs in
two steps because the body may only be parsed after its signature holds:

1. ``verify_m3`` / ``verify_aisha`` check the signature header against the raw body and
   every configured secret, then the header timestamp against the widest window.
2. ``check_m3_payload`` / ``check_aisha_payload`` run on the parsed JSON: the narrower
   window the payload asks for (M3) or the body's own ``ts`` (body-signed AiSHA), then
   the agreement between the event headers and the body.

Failures raise the 401/400 errors from ``relay.errors``; their ``detail`` never echoes a
secret, a signature or body content.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeGuard

from relay.errors import (
    HeaderMismatchError,
    InvalidSignatureError,
    MalformedSignatureHeaderError,
    MissingSignatureError,
    TimestampOutOfWindowError,
)

M3_SIGNATURE_HEADER = "X-M3-Signature"
M3_EVENT_HEADER = "X-M3-Event"
AISHA_SIGNATURE_HEADER = "X-AISHA-SIGNATURE"
AISHA_TIMESTAMP_HEADER = "X-AISHA-TIMESTAMP"
AISHA_EVENT_ID_HEADER = "X-AISHA-EVENT-ID"

# [0-9] rather than \d or str.isdigit: those accept non-ASCII digits that int() would
# happily turn into a timestamp. fullmatch, because `$` also matches before a final "\n".
_TIMESTAMP = re.compile(r"[0-9]{1,10}", re.ASCII)
_HEX_SIGNATURE = re.compile(r"[0-9a-fA-F]{64}", re.ASCII)
_M3_PREFIX = "m3="
_AISHA_PREFIX = "sha256="


def verify_m3(
    headers: Mapping[str, str],
    body: bytes,
    secrets: Sequence[str],
    *,
    now: int,
    max_window_sec: int,
) -> int:
    """Verify ``X-M3-Signature`` over the raw body and return its timestamp.

    The header is ``m3=t=<ts>,v1=<hex>[,v1=<hex>...]``; unknown keys are ignored and one
    matching ``v1`` with any configured secret suffices. The signature is checked before
    the window, so a forged request is told ``invalid_signature`` whatever its age.

    Raises MissingSignatureError, MalformedSignatureHeaderError, InvalidSignatureError or
    TimestampOutOfWindowError (``|now - ts| > max_window_sec``).
    """
    value = _header(headers, M3_SIGNATURE_HEADER)
    if value is None or not value.strip():
        raise MissingSignatureError(
            "The request has no X-M3-Signature header; send 'm3=t=<unix seconds>,v1=<hex>' computed over the raw body."
        )
    raw_ts, candidates = _parse_m3_header(value)
    if not _matches(raw_ts.encode("ascii") + b"." + body, candidates, secrets):
        raise InvalidSignatureError(
            "The X-M3-Signature matches none of the configured secrets; sign '<t>.' followed "
            "by the exact body bytes you send."
        )
    ts = int(raw_ts)
    _check_window(ts, now=now, window_sec=max_window_sec, source="The X-M3-Signature timestamp")
    return ts


def check_m3_payload(
    headers: Mapping[str, str],
    payload: Mapping[str, Any],
    *,
    ts: int,
    now: int,
    max_window_sec: int,
) -> None:
    """Check a verified M3 request against its parsed body.

    ``ts`` is what ``verify_m3`` returned. First the window the payload asks for
    (``security.ts_window_sec``, capped at ``max_window_sec``; ignored unless it is a
    positive integer, which schema validation reports), then ``X-M3-Event`` against the
    body's ``type`` — the contract answers 401 before 400.

    Raises TimestampOutOfWindowError or HeaderMismatchError.
    """
    window_sec = max_window_sec
    security = payload.get("security")
    if isinstance(security, Mapping):
        asked = security.get("ts_window_sec")
        if _is_positive_int(asked):
            window_sec = min(asked, max_window_sec)
    _check_window(ts, now=now, window_sec=window_sec, source="The X-M3-Signature timestamp")

    event = _header(headers, M3_EVENT_HEADER)
    if not event:
        raise HeaderMismatchError("The request has no X-M3-Event header; send it with the body's type.")
    if event != payload.get("type"):
        raise HeaderMismatchError("The X-M3-Event header differs from the body's type; send the same type in both.")


def verify_aisha(
    headers: Mapping[str, str],
    body: bytes,
    secrets: Sequence[str],
    *,
    now: int,
    max_window_sec: int,
) -> int | None:
    """Verify ``X-AISHA-SIGNATURE`` over the raw body; return the header timestamp or None.

    With ``X-AISHA-TIMESTAMP`` the signature covers ``"<ts>." + body`` and the window is
    checked here; the ``sha256=`` prefix is optional. Without it (the body-signed PR8
    sender) the signature covers the body alone, None is returned and the window is
    left to ``check_aisha_payload``, on the body's ``ts``.

    Raises MissingSignatureError, MalformedSignatureHeaderError, InvalidSignatureError or
    TimestampOutOfWindowError.
    """
    value = _header(headers, AISHA_SIGNATURE_HEADER)
    if value is None or not value.strip():
        raise MissingSignatureError(
            "The request has no X-AISHA-SIGNATURE header; send the hex HMAC-SHA256 of the raw body."
        )
    candidate = value[len(_AISHA_PREFIX) :] if value.startswith(_AISHA_PREFIX) else value
    if not _HEX_SIGNATURE.fullmatch(candidate):
        raise MalformedSignatureHeaderError(
            "The X-AISHA-SIGNATURE header must be 64 hex characters, optionally prefixed by 'sha256='."
        )

    raw_ts = _header(headers, AISHA_TIMESTAMP_HEADER)
    if raw_ts is None:
        if not _matches(body, [candidate], secrets):
            raise InvalidSignatureError(
                "The X-AISHA-SIGNATURE matches none of the configured secrets over the raw body; "
                "a signature over '<ts>.' and the body also needs its X-AISHA-TIMESTAMP header."
            )
        return None

    if not _TIMESTAMP.fullmatch(raw_ts):
        raise MalformedSignatureHeaderError(
            "The X-AISHA-TIMESTAMP header must be Unix seconds written as 1 to 10 ASCII digits."
        )
    if not _matches(raw_ts.encode("ascii") + b"." + body, [candidate], secrets):
        raise InvalidSignatureError(
            "The X-AISHA-SIGNATURE matches none of the configured secrets; sign '<ts>.' followed "
            "by the exact body bytes you send."
        )
    ts = int(raw_ts)
    _check_window(ts, now=now, window_sec=max_window_sec, source="The X-AISHA-TIMESTAMP")
    return ts


def check_aisha_payload(
    headers: Mapping[str, str],
    payload: Mapping[str, Any],
    *,
    header_ts: int | None,
    now: int,
    max_window_sec: int,
) -> None:
    """Check a verified AiSHA request against its parsed body.

    ``header_ts`` is what ``verify_aisha`` returned. When it is None (body-signed), the
    body's ``ts`` is the signed timestamp: it must be an ISO 8601 time with ``Z`` or an
    offset, within ``max_window_sec`` of ``now``. Then ``X-AISHA-EVENT-ID`` must equal
    the body's ``event_id``.

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
        _check_window(body_ts, now=now, window_sec=max_window_sec, source="The body's ts")

    event_id = _header(headers, AISHA_EVENT_ID_HEADER)
    if not event_id:
        raise HeaderMismatchError("The request has no X-AISHA-EVENT-ID header; send it with the body's event_id.")
    if event_id != payload.get("event_id"):
        raise HeaderMismatchError(
            "The X-AISHA-EVENT-ID header differs from the body's event_id; send the same id in both."
        )


def sign_m3(body: bytes, secret: str, *, ts: int, event_type: str | None = None) -> dict[str, str]:
    """Return the headers that sign ``body`` for an X-M3 receiver at time ``ts``.

    ``{"X-M3-Signature": "m3=t=<ts>,v1=<hex>"}``, plus ``X-M3-Event`` when ``event_type``
    is given (it must equal the body's ``type``; callers that set it themselves omit it).
    """
    raw_ts = _format_ts(ts)
    signature = _hmac_hex(secret, raw_ts.encode("ascii") + b"." + body)
    headers = {M3_SIGNATURE_HEADER: f"{_M3_PREFIX}t={raw_ts},v1={signature}"}
    if event_type is not None:
        headers[M3_EVENT_HEADER] = event_type
    return headers


def sign_aisha(body: bytes, secret: str, *, ts: int | None = None, event_id: str) -> dict[str, str]:
    """Return the headers that sign ``body`` for an X-AISHA receiver.

    With ``ts``: ``X-AISHA-TIMESTAMP`` and ``X-AISHA-SIGNATURE: sha256=<hex of "<ts>." +
    body>``. Without (the PR8 form, used for callbacks and workflow forwards, where the
    body's own ``ts`` is the timestamp): ``X-AISHA-SIGNATURE: <hex of body>``. Both carry
    ``X-AISHA-EVENT-ID: event_id``, which must equal the body's ``event_id``.
    """
    if ts is None:
        return {
            AISHA_SIGNATURE_HEADER: _hmac_hex(secret, body),
            AISHA_EVENT_ID_HEADER: event_id,
        }
    raw_ts = _format_ts(ts)
    return {
        AISHA_TIMESTAMP_HEADER: raw_ts,
        AISHA_SIGNATURE_HEADER: _AISHA_PREFIX + _hmac_hex(secret, raw_ts.encode("ascii") + b"." + body),
        AISHA_EVENT_ID_HEADER: event_id,
    }


def _header(headers: Mapping[str, str], name: str) -> str | None:
    # A CIMultiDict answers .get case-insensitively; a plain dict (tests, the CLI) does not.
    value = headers.get(name)
    if value is not None:
        return value
    wanted = name.lower()
    for key, candidate in headers.items():
        if key.lower() == wanted:
            return candidate
    return None


def _parse_m3_header(value: str) -> tuple[str, list[str]]:
    """Split ``m3=t=<ts>,v1=<hex>...`` into the timestamp as sent and the v1 candidates."""
    if not value.startswith(_M3_PREFIX):
        raise MalformedSignatureHeaderError(
            "The X-M3-Signature header must start with 'm3=', as in 'm3=t=<unix seconds>,v1=<hex>'."
        )
    raw_ts: str | None = None
    candidates: list[str] = []
    for part in value[len(_M3_PREFIX) :].split(","):
        key, _, item = part.partition("=")
        if key == "t":
            if raw_ts is not None:
                raise MalformedSignatureHeaderError("The X-M3-Signature header must carry exactly one 't='.")
            raw_ts = item
        elif key == "v1":
            candidates.append(item)
    if raw_ts is None:
        raise MalformedSignatureHeaderError(
            "The X-M3-Signature header has no 't=<unix seconds>'; add the signing time."
        )
    if not candidates:
        raise MalformedSignatureHeaderError("The X-M3-Signature header has no 'v1=<hex>'; add the signature.")
    if not _TIMESTAMP.fullmatch(raw_ts):
        raise MalformedSignatureHeaderError(
            "The X-M3-Signature 't' must be Unix seconds written as 1 to 10 ASCII digits."
        )
    if not all(_HEX_SIGNATURE.fullmatch(candidate) for candidate in candidates):
        raise MalformedSignatureHeaderError("Every X-M3-Signature 'v1' must be 64 hex characters.")
    return raw_ts, candidates


def _matches(message: bytes, candidates: Iterable[str], secrets: Sequence[str]) -> bool:
    # A bare str is a Sequence[str] too: iterating it would make every character a key.
    if isinstance(secrets, str):
        raise TypeError("secrets must be a sequence of secrets, not one string")
    wanted = [candidate.lower() for candidate in candidates]
    for secret in secrets:
        # An empty key is one anybody can sign with: skip it, so that a missing secret
        # fails closed instead of verifying everything signed with "".
        if not secret:
            continue
        expected = _hmac_hex(secret, message)
        for candidate in wanted:
            if hmac.compare_digest(expected, candidate):
                return True
    return False


def _hmac_hex(secret: str, message: bytes) -> str:
    if not secret:
        raise ValueError("refusing to sign with an empty secret")
    return hmac.digest(secret.encode("utf-8"), message, "sha256").hex()


def _format_ts(ts: int) -> str:
    # Our own receivers must accept what we send, so never sign a timestamp they would refuse.
    raw_ts = str(ts) if type(ts) is int else ""
    if not _TIMESTAMP.fullmatch(raw_ts):
        raise ValueError("ts must be an int of Unix seconds between 0 and 9999999999")
    return raw_ts


def _check_window(ts: float, *, now: int, window_sec: int, source: str) -> None:
    skew = abs(now - ts)
    if skew > window_sec:
        direction = "behind" if ts < now else "ahead of"
        raise TimestampOutOfWindowError(
            f"{source} is {int(skew)} s {direction} the relay's clock, outside the {window_sec} s "
            "window; sign with the current time and check the sender's clock."
        )


def _is_positive_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


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
