"""AiSHA, the CRM backend that emits C.A.R.E. events, as a `Sender`.

Its payload is the C.A.R.E. Event Payload Contract v1 (`events`), its signature the
``X-AISHA-*`` headers (`signature`). Its callbacks are body-signed (the PR8 form): the
body's own ``ts`` is the signed timestamp, so each attempt is re-stamped and re-signed.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any

from receivers.aisha import signature
from receivers.aisha.events import EVENT_TYPES, parse
from receivers.json_body import dumps
from relay.model import Signal, iso
from relay.settings import Settings

__all__ = ["EVENT_TYPES", "SENDER", "AishaSender", "parse"]


class AishaSender:
    """The AiSHA `Sender` (see `receivers.Sender` for what each member means)."""

    name = "aisha"
    secrets_env = "AISHA_WEBHOOK_SECRETS"
    event_types: Collection[str] = EVENT_TYPES
    # The same event_id with a newer ts: a receiver that keeps event ids (as this relay
    # does) says an earlier attempt, which timed out here, had arrived.
    conflict_on_retry_is_arrival = True

    def secrets(self, settings: Settings) -> Sequence[str]:
        return settings.aisha_webhook_secrets

    def max_window(self, settings: Settings) -> int:
        return settings.aisha_max_window_sec

    def verify(
        self, headers: Mapping[str, str], body: bytes, secrets: Sequence[str], *, now: int, max_window_sec: int
    ) -> int | None:
        return signature.verify(headers, body, secrets, now=now, max_window_sec=max_window_sec)

    def check(
        self, headers: Mapping[str, str], payload: Mapping[str, Any], *, ts: int | None, now: int, max_window_sec: int
    ) -> None:
        signature.check(headers, payload, header_ts=ts, now=now, max_window_sec=max_window_sec)

    def parse(self, payload: Any) -> Signal:
        return parse(payload)

    def parse_fast(self, body: bytes) -> tuple[Mapping[str, Any], Signal] | None:
        # No one-pass reader yet: every AiSHA body takes the ordinary path.
        return None

    def sign(self, body: bytes, secret: str, *, ts: int, payload: Mapping[str, Any]) -> dict[str, str]:
        return signature.sign(body, secret, ts=ts, event_id=str(payload.get("event_id", "")))

    def freshen(self, payload: Mapping[str, Any], now: datetime) -> dict[str, Any]:
        return {**payload, "event_id": str(uuid.uuid4()), "ts": iso(int(now.timestamp() * 1000))}

    def callback_body(self, kind: str, event_id: str, by: dict[str, str], at: int, **fields: str) -> dict[str, Any]:
        return {"event_id": str(uuid.uuid4()), "type": kind, "ts": iso(at), "for": event_id, "by": by, **fields}

    def callback_target(self, settings: Settings) -> tuple[str | None, str | None]:
        return settings.aisha_callback_url, settings.aisha_callback_secret

    def sign_callback(
        self, fields: Mapping[str, Any], secret: str | None, *, now_ms: int
    ) -> tuple[bytes, dict[str, str]]:
        body = dumps({**fields, "ts": iso(now_ms)})
        if not secret:
            return body, {}
        return body, signature.sign(body, secret, event_id=fields["event_id"])


SENDER = AishaSender()
