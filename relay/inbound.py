"""What SMS and WhatsApp post besides answers: the relay's bookkeeping of inbound messages.

A reply is claimed once per MessageSid (a replay is answered with nothing), numbers not in
the directory are counted per number and hour under a keyed hash (never stored in full),
opt-outs and opt-ins are kept with an audit row, and delivery status moves an invitation
only up its ladder (and fails a join code that did not arrive after all). Storage is `inbox.inbound`; the time is the app's clock. No full phone
number reaches storage, an audit line or a log line from here.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from functools import partial

from inbox import inbound
from inbox.writer import Writer
from relay import audit
from relay.model import millis
from relay.redact import redact
from relay.settings import Settings

__all__ = ["DeliveryMoved", "Inbound", "UnknownSender", "number_hash"]

#: seconds between looks for a status callback's sid that the send has not committed yet
UNKNOWN_SID_WAITS = (0.1, 0.3, 0.6)


class UnknownSender(StrEnum):
    """What became of a message from a number the directory does not know."""

    #: kept as a verification_attempt row (redacted, hashed) and an audit line.
    RECORDED = "recorded"
    #: this MessageSid was recorded before.
    REPLAY = "replay"
    #: past the hourly limit for this number: nothing kept.
    LIMITED = "limited"


@dataclass(frozen=True)
class DeliveryMoved:
    """What a status callback was about (`what`: "invitation", or "join_code" and its outbox row's `id`),
    and whether its delivery status moved."""

    what: str
    id: int
    channel: str
    moved: bool


def number_hash(settings: Settings, number: str) -> str:
    """A keyed hash of a full number (the first link secret, else the auth token): counts without keeping it."""
    key = (settings.relay_link_secrets[0] if settings.relay_link_secrets else settings.twilio_auth_token) or ""
    return hmac.new(key.encode(), b"care-relay.unknown-sender.v1:" + number.encode(), hashlib.sha256).hexdigest()


class Inbound:
    """Inbound-message bookkeeping for the Twilio channels; `clock` is the app's, in Unix seconds."""

    def __init__(self, writer: Writer, settings: Settings, *, clock: Callable[[], float]) -> None:
        self._writer = writer
        self._settings = settings
        self._clock = clock

    async def claim(self, sid: str, channel: str, number: str) -> bool:
        """Take a MessageSid for answering: False when it was (or is being) answered already."""
        shown, at = redact(number) or "", millis(self._clock)
        return await self._writer.run(lambda tx: inbound.claim_message(tx, sid, channel, shown, at))

    async def settle(self, sid: str, outcome: str) -> None:
        """Keep what the answer to a claimed MessageSid was."""
        await self._writer.run(lambda tx: inbound.settle_message(tx, sid, outcome))

    async def release(self, sid: str) -> None:
        """Give a claim back (its answer failed), so that Twilio's retry answers it afresh."""
        await self._writer.run(lambda tx: inbound.release_message(tx, sid))

    async def unknown_sender(self, sid: str, channel: str, number: str) -> UnknownSender:
        """A message from a number not in the directory (or of an inactive agent): counted, never kept in full."""
        shown, digest = redact(number) or "", number_hash(self._settings, number)
        limit, at = self._settings.relay_unknown_sender_max_per_hour, millis(self._clock)
        result = UnknownSender(
            await self._writer.run(
                lambda tx: inbound.record_unknown(
                    tx, sid=sid, channel=channel, sender=shown, digest=digest, limit=limit, at=at
                )
            )
        )
        if result is UnknownSender.RECORDED:
            audit.emit({"kind": "unknown_sender", "via": channel, "from": shown})
        return result

    async def opt(self, agent_id: str, channel: str, *, opted_out: bool) -> None:
        """An agent's STOP (or START) on one channel: kept with an audit row and line."""
        at = millis(self._clock)
        await self._writer.run(lambda tx: inbound.record_opt(tx, agent_id, channel, opted_out, at))
        kind = "opt_out" if opted_out else "opt_in"
        audit.emit({"kind": kind, "agent": agent_id, "via": channel, "action_origin": "user_directed"})

    async def delivery(
        self, sid: str, status: str | None, error: str, *, opted_out: bool, outside_session: bool = False
    ) -> DeliveryMoved | None:
        """Move the invitation sent as `sid` up the delivery ladder, or fail the join code sent as `sid` (its
        outbox row, to be retried by a person); None when nothing was sent as `sid`.

        Twilio may call back before the send's own commit has stored the message's sid: it
        is looked for again for a moment rather than lose a "delivered" that raced the commit.
        """
        found = None
        for wait in (0.0, *UNKNOWN_SID_WAITS):
            await asyncio.sleep(wait)
            found = await self._writer.run(
                partial(
                    inbound.record_status,
                    sid=sid,
                    status=status,
                    error=error,
                    opted_out=opted_out,
                    at=millis(self._clock),
                    outside_session=outside_session,
                )
            )
            if found is not None:
                break
        if found is None:
            return None
        if status == "failed" and found.moved:  # a late "failed" after "delivered" moves nothing and says nothing
            if found.what == "invitation":
                about = {"invitation": found.id, "action_origin": "care_autonomous"}
            else:  # a join code: failed outbox work a person can retry, as a join code refused at once is
                about = {"outbox": found.id, "what": "verify", "action_origin": "user_directed"}
            audit.emit(
                {
                    "kind": "delivery_failed",
                    **about,
                    "via": found.channel,
                    "error": error,
                    "policy_gate_result": "allowed",
                    "reason": "Twilio reported the message was not delivered",
                }
            )
        return DeliveryMoved(found.what, found.id, found.channel, found.moved)
