"""The X-M3-Signature header: verify an inbound M3 request, sign an outbound one.

The header is ``m3=t=<ts>,v1=<hex>[,v1=<hex>...]`` and signs ``"<ts>." + body``
(CONTRACT.md section 3). Verification runs in two steps because the body may only be
parsed after its signature holds: `verify` checks the signature against the raw body and
every configured secret, then the timestamp against the widest window; `check` runs on
the parsed JSON, with the narrower window the payload asks for and the agreement
between ``X-M3-Event`` and the body's ``type``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeGuard

from receivers.signing import HEX_SIGNATURE, TIMESTAMP, check_window, format_ts, hmac_hex, matches
from relay.errors import (
    HeaderMismatchError,
    InvalidSignatureError,
    MalformedSignatureHeaderError,
    MissingSignatureError,
)
from relay.headers import header

SIGNATURE_HEADER = "X-M3-Signature"
EVENT_HEADER = "X-M3-Event"
_PREFIX = "m3="
_WHOSE = "The X-M3-Signature timestamp"


def verify(
    headers: Mapping[str, str],
    body: bytes,
    secrets: Sequence[str],
    *,
    now: int,
    max_window_sec: int,
) -> int:
    """Verify ``X-M3-Signature`` over the raw body and return its timestamp.

    Unknown keys in the header are ignored and one matching ``v1`` with any configured
    secret suffices. The signature is checked before the window, so a forged request is
    told ``invalid_signature`` whatever its age.

    Raises MissingSignatureError, MalformedSignatureHeaderError, InvalidSignatureError or
    TimestampOutOfWindowError (``|now - ts| > max_window_sec``).
    """
    value = header(headers, SIGNATURE_HEADER)
    if value is None or not value.strip():
        raise MissingSignatureError(
            "The request has no X-M3-Signature header; send 'm3=t=<unix seconds>,v1=<hex>' computed over the raw body."
        )
    raw_ts, candidates = _parse_header(value)
    if not matches(raw_ts.encode("ascii") + b"." + body, candidates, secrets):
        raise InvalidSignatureError(
            "The X-M3-Signature matches none of the configured secrets; sign '<t>.' followed "
            "by the exact body bytes you send."
        )
    ts = int(raw_ts)
    check_window(ts, now=now, window_sec=max_window_sec, source=_WHOSE)
    return ts


def check(
    headers: Mapping[str, str],
    payload: Mapping[str, Any],
    *,
    ts: int,
    now: int,
    max_window_sec: int,
) -> None:
    """Check a verified M3 request against its parsed body.

    ``ts`` is what `verify` returned. First the window the payload asks for
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
    check_window(ts, now=now, window_sec=window_sec, source=_WHOSE)

    event = header(headers, EVENT_HEADER)
    if not event:
        raise HeaderMismatchError("The request has no X-M3-Event header; send it with the body's type.")
    if event != payload.get("type"):
        raise HeaderMismatchError("The X-M3-Event header differs from the body's type; send the same type in both.")


def sign(body: bytes, secret: str, *, ts: int, event_type: str | None = None) -> dict[str, str]:
    """Return the headers that sign ``body`` for an X-M3 receiver at time ``ts``.

    ``{"X-M3-Signature": "m3=t=<ts>,v1=<hex>"}``, plus ``X-M3-Event`` when ``event_type``
    is given (it must equal the body's ``type``; callers that set it themselves omit it).
    """
    raw_ts = format_ts(ts)
    signature = hmac_hex(secret, raw_ts.encode("ascii") + b"." + body)
    headers = {SIGNATURE_HEADER: f"{_PREFIX}t={raw_ts},v1={signature}"}
    if event_type is not None:
        headers[EVENT_HEADER] = event_type
    return headers


def _parse_header(value: str) -> tuple[str, list[str]]:
    """Split ``m3=t=<ts>,v1=<hex>...`` into the timestamp as sent and the v1 candidates."""
    if not value.startswith(_PREFIX):
        raise MalformedSignatureHeaderError(
            "The X-M3-Signature header must start with 'm3=', as in 'm3=t=<unix seconds>,v1=<hex>'."
        )
    raw_ts: str | None = None
    candidates: list[str] = []
    for part in value[len(_PREFIX) :].split(","):
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
    if not TIMESTAMP.fullmatch(raw_ts):
        raise MalformedSignatureHeaderError(
            "The X-M3-Signature 't' must be Unix seconds written as 1 to 10 ASCII digits."
        )
    if not all(HEX_SIGNATURE.fullmatch(candidate) for candidate in candidates):
        raise MalformedSignatureHeaderError("Every X-M3-Signature 'v1' must be 64 hex characters.")
    return raw_ts, candidates


def _is_positive_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0
