"""The aiohttp handlers for senders: bytes → verify → parse → intake → 202.

Checks run in the contract's order and the first failure answers: body size (413) →
content encoding and type (415) → signature and timestamp (401) → JSON (400) → header agreement
(400) → payload schema (422) → replay (200 duplicate / 409). A body that is JSON but not
an object has no fields to hold the headers against: it is the schema's 422 at once.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from aiohttp import web

from receivers import aisha, m3, signing
from receivers.schema import require_object
from relay.errors import MalformedJsonError, PayloadTooLargeError, UnsupportedMediaTypeError
from relay.model import Signal
from relay.settings import Settings
from relay.state import CLOCK, INTAKE, SETTINGS, TOKENS
from relay.web.requests import media_type


@dataclass(frozen=True)
class Sender:
    """One sender's boundary: how it signs, and how its payloads parse."""

    name: str
    verify: Callable[..., int | None]
    check: Callable[..., None]
    parse: Callable[[Any], Signal]
    #: bytes → (what `check` reads, Signal) for a body that is fine, else None (then the ordinary path)
    parse_fast: Callable[[bytes], tuple[Mapping[str, Any], Signal] | None] | None
    secrets: Callable[[Settings], Sequence[str]]
    max_window: Callable[[Settings], int]


def _check_m3(headers: Mapping[str, str], payload: Any, *, ts: int | None, now: int, max_window_sec: int) -> None:
    assert ts is not None  # verify_m3 always returns the header's timestamp
    signing.check_m3_payload(headers, payload, ts=ts, now=now, max_window_sec=max_window_sec)


def _check_aisha(headers: Mapping[str, str], payload: Any, *, ts: int | None, now: int, max_window_sec: int) -> None:
    signing.check_aisha_payload(headers, payload, header_ts=ts, now=now, max_window_sec=max_window_sec)


SENDERS: dict[str, Sender] = {
    "m3": Sender(
        "m3",
        signing.verify_m3,
        _check_m3,
        m3.parse,
        m3.parse_fast,
        lambda s: s.m3_webhook_secrets,
        lambda s: s.m3_max_window_sec,
    ),
    "aisha": Sender(
        "aisha",
        signing.verify_aisha,
        _check_aisha,
        aisha.parse,
        None,
        lambda s: s.aisha_webhook_secrets,
        lambda s: s.aisha_max_window_sec,
    ),
}


async def read_body(request: web.Request, limit: int) -> bytes:
    """The raw body, refusing (413) as soon as it grows past `limit`, and (415) one with a
    Content-Encoding: signatures cover the bytes as sent, so a decoded body is not what was signed."""
    too_large = PayloadTooLargeError.over(limit)
    if request.content_length is not None and request.content_length > limit:
        raise too_large
    if request.headers.get("Content-Encoding", "identity").strip().lower() not in ("", "identity"):
        raise UnsupportedMediaTypeError(
            "Send the body without Content-Encoding (no gzip or other compression): "
            "the signature covers the bytes as sent."
        )
    try:
        # aiohttp stops reading at client_max_size (set just above `limit` by create_app)
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise too_large from None
    if len(body) > limit:
        raise too_large
    return body


def _reject_constant(name: str) -> Any:
    raise ValueError(name)


def _finite_float(text: str) -> float:
    # JSON has no infinity: `1e999` would otherwise read as one, while `Infinity` is refused.
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("number out of range")
    return value


def loads(text: str | bytes) -> Any:
    """Strict JSON: UTF-8, no NaN or Infinity, no number that overflows to either."""
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    return json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)


def parse_json(body: bytes) -> Any:
    try:
        return loads(body)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise MalformedJsonError() from None


def status_url(request: web.Request, source: str, event_id: str) -> str:
    token = request.app[TOKENS].status_token(source, event_id)
    return f"/v1/events/{quote(event_id, safe='')}?token={token}"


def handler_for(sender: Sender) -> Callable[[web.Request], Any]:
    async def handle_signal(request: web.Request) -> web.Response:
        settings = request.app[SETTINGS]
        body = await read_body(request, settings.relay_max_body_bytes)
        if media_type(request) != "application/json":
            raise UnsupportedMediaTypeError()
        now = int(request.app[CLOCK]())
        window = sender.max_window(settings)
        ts = sender.verify(request.headers, body, sender.secrets(settings), now=now, max_window_sec=window)
        fast = sender.parse_fast(body) if sender.parse_fast is not None else None
        if fast is not None:
            checked, signal = fast
            sender.check(request.headers, checked, ts=ts, now=now, max_window_sec=window)
        else:
            # not an object: no fields to hold the headers against, so the schema's 422 answers
            payload = require_object(parse_json(body))
            sender.check(request.headers, payload, ts=ts, now=now, max_window_sec=window)
            signal = sender.parse(payload)
        result = await request.app[INTAKE].receive(signal, body)
        answer = {
            "id": result.event_id,
            "status": result.status,
            "duplicate": result.duplicate,
            "status_url": status_url(request, result.source, result.event_id),
        }
        return web.json_response(answer, status=200 if result.duplicate else 202)

    handle_signal.__name__ = f"handle_{sender.name}"
    return handle_signal


def read_signal(source: str, body: bytes) -> Signal:
    """A stored, already verified body read back into its Signal."""
    return SENDERS[source].parse(json.loads(body))


def add_routes(app: web.Application) -> None:
    for name, sender in SENDERS.items():
        app.router.add_post(f"/hooks/{name}", handler_for(sender))
