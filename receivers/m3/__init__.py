"""M3, the app that emits relational signals (`panic.ui`, `status.set`), as a `Sender`.

Its payload is the Relational Webhooks envelope (`envelope`), its signature the
``X-M3-Signature`` header (`signature`); its callbacks carry an ``id`` of their own and
are signed in the header, with a fresh timestamp per attempt.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any

from receivers.json_body import dumps
from receivers.m3 import signature
from receivers.m3.envelope import EVENT_TYPES, parse, parse_fast
from relay.model import Signal, iso
from relay.settings import Settings

__all__ = ["EVENT_TYPES", "SENDER", "M3Sender", "parse", "parse_fast"]


class M3Sender:
    """The M3 `Sender` (see `receivers.Sender` for what each member means)."""

    name = "m3"
    secrets_env = "M3_WEBHOOK_SECRETS"
    event_types: Collection[str] = EVENT_TYPES
    # The header carries the timestamp, so a retried callback is the same body: no conflict to read.
    conflict_on_retry_is_arrival = False

    def secrets(self, settings: Settings) -> Sequence[str]:
        return settings.m3_webhook_secrets

    def max_window(self, settings: Settings) -> int:
        return settings.m3_max_window_sec

    def verify(
        self, headers: Mapping[str, str], body: bytes, secrets: Sequence[str], *, now: int, max_window_sec: int
    ) -> int:
        return signature.verify(headers, body, secrets, now=now, max_window_sec=max_window_sec)

    def check(
        self, headers: Mapping[str, str], payload: Mapping[str, Any], *, ts: int | None, now: int, max_window_sec: int
    ) -> None:
        if ts is None:  # verify always returns the header's timestamp: a caller skipped it
            raise TypeError("check needs the timestamp that verify returned")
        signature.check(headers, payload, ts=ts, now=now, max_window_sec=max_window_sec)

    def parse(self, payload: Any) -> Signal:
        return parse(payload)

    def parse_fast(self, body: bytes) -> tuple[Mapping[str, Any], Signal] | None:
        return parse_fast(body)

    def sign(self, body: bytes, secret: str, *, ts: int, payload: Mapping[str, Any]) -> dict[str, str]:
        return signature.sign(body, secret, ts=ts, event_type=str(payload.get("type", "")))

    def freshen(self, payload: Mapping[str, Any], now: datetime) -> dict[str, Any]:
        out = dict(payload)
        out["id"] = "evt_" + uuid.uuid4().hex[:20].upper()
        out["ts"] = iso(int(now.timestamp() * 1000))
        security = dict(out.get("security") or {})
        security["nonce"] = uuid.uuid4().hex
        out["security"] = security
        return out

    def callback_body(self, kind: str, event_id: str, by: dict[str, str], at: int, **fields: str) -> dict[str, Any]:
        prefix = "ack" if kind == "care.ack" else "done"
        return {"id": f"{prefix}_{uuid.uuid4().hex}", "type": kind, "ts": iso(at), "for": event_id, "by": by, **fields}

    def callback_target(self, settings: Settings) -> tuple[str | None, str | None]:
        return settings.m3_callback_url, settings.m3_callback_key

    def sign_callback(
        self, fields: Mapping[str, Any], secret: str | None, *, now_ms: int
    ) -> tuple[bytes, dict[str, str]]:
        body = dumps(fields)
        if not secret:
            return body, {}
        return body, signature.sign(body, secret, ts=now_ms // 1000, event_type=fields["type"])


SENDER = M3Sender()
