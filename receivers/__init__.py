"""The senders: pure wire formats of the systems that POST signals to the relay.

A sender is a `Sender`: how it signs (verify on the raw bytes, check against the parsed
body), how its payloads parse into a `Signal`, and how the relay answers it (the
care.ack / care.done callback body, its signature, where it goes). `SENDERS` names every
one; a route, a status query, a stored body read back and the outbox all go through it,
so a new sender is one module and one line here.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from receivers import aisha, m3
from relay.model import Signal
from relay.settings import Settings


class Sender(Protocol):
    """One sender's boundary: its signature, its payloads and its callbacks."""

    @property
    def name(self) -> str:
        """The route segment (`/hooks/<name>`) and `Signal.source`."""
        ...

    @property
    def secrets_env(self) -> str:
        """The environment variable that holds its webhook secrets (named in messages, read by emit)."""
        ...

    @property
    def event_types(self) -> Collection[str]:
        """The event types it sends that the relay handles (its payload models' dispatch table)."""
        ...

    @property
    def conflict_on_retry_is_arrival(self) -> bool:
        """Whether a 409 to a retried callback means an earlier attempt arrived (a re-stamped body)."""
        ...

    def secrets(self, settings: Settings) -> Sequence[str]:
        """The secrets its requests may be signed with, newest first."""
        ...

    def max_window(self, settings: Settings) -> int:
        """The widest clock skew, in seconds, its signature timestamp may have."""
        ...

    def verify(
        self, headers: Mapping[str, str], body: bytes, secrets: Sequence[str], *, now: int, max_window_sec: int
    ) -> int | None:
        """Check the signature over the raw bytes; the signed timestamp, or None when it is in the body."""
        ...

    def check(
        self, headers: Mapping[str, str], payload: Mapping[str, Any], *, ts: int | None, now: int, max_window_sec: int
    ) -> None:
        """Check a verified request against its parsed body (windows, header agreement)."""
        ...

    def parse(self, payload: Any) -> Signal:
        """A decoded JSON body as a `Signal`; raises the 422 errors."""
        ...

    def parse_fast(self, body: bytes) -> tuple[Mapping[str, Any], Signal] | None:
        """Bytes → (what `check` reads, Signal) for a body that is fine; None sends it the ordinary way."""
        ...

    def sign(self, body: bytes, secret: str, *, ts: int, payload: Mapping[str, Any]) -> dict[str, str]:
        """The headers that sign `body` as this sender signs its requests at `ts`."""
        ...

    def freshen(self, payload: Mapping[str, Any], now: datetime) -> dict[str, Any]:
        """A copy with a new id, timestamp (and nonce), so that it is a new event."""
        ...

    def callback_body(self, kind: str, event_id: str, by: dict[str, str], at: int, **fields: str) -> dict[str, Any]:
        """The care.ack / care.done body answering its event `event_id`, with an id of its own."""
        ...

    def callback_target(self, settings: Settings) -> tuple[str | None, str | None]:
        """Where its callbacks go and the secret they are signed with (None: not configured)."""
        ...

    def sign_callback(
        self, fields: Mapping[str, Any], secret: str | None, *, now_ms: int
    ) -> tuple[bytes, dict[str, str]]:
        """The body and signature headers of one attempt at a callback, signed at `now_ms`."""
        ...


SENDERS: dict[str, Sender] = {
    "m3": m3.SENDER,
    "aisha": aisha.SENDER,
}


def read_signal(source: str, body: bytes) -> Signal:
    """A stored, already verified body read back into its Signal."""
    return SENDERS[source].parse(json.loads(body))
