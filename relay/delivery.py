"""What a channel is given and what it answers: the outbound contract the outbox relies on.

Values only (kernel): an `Invite` to word and address, the `Delivery` a provider's answer
becomes, and the `Channel` protocol every provider implements. `send` never raises for a
provider's answer: it returns a `Delivery` that says whether to retry.
"""

from __future__ import annotations

import email.utils
import math
import time
from dataclasses import dataclass, field
from typing import Protocol

from relay.model import Agent, Signal
from relay.words import Words, english


@dataclass(frozen=True)
class Invite:
    """Everything needed to word and address one invitation."""

    invitation_id: int
    channel: str
    code: str
    agent: Agent
    signal: Signal
    #: the responses offered (the payload's, or AISHA_SUGGESTED_RESPONSES).
    responses: tuple[str, ...]
    #: the signed action-link page for this invitation.
    action_url: str
    #: AiSHA: AISHA_APP_BASE_URL + deep_link, when both exist.
    deep_link: str | None = None
    #: the care window in effect, minutes: AiSHA's is AISHA_CARE_WINDOW_MINUTES, M3's the payload's;
    #: None when it is the signal's own (an Invite built without settings)
    window_minutes: int | None = None
    #: WhatsApp: the agent's 24-hour session is open (their last message in is that recent),
    #: so free-form text may go; closed, only an approved template may.
    session_open: bool = True
    #: the agent's language (relay.words): every sentence and label of this invitation.
    words: Words = field(default_factory=english, compare=False, repr=False)


def care_window(invite: Invite) -> int | None:
    """The invitation's care window in minutes (None or 0: unlimited)."""
    return invite.window_minutes if invite.window_minutes is not None else invite.signal.care_window_minutes


@dataclass(frozen=True)
class Join:
    """A request to an agent to confirm one of their addresses (CONTRACT section 8): no care data."""

    agent: Agent
    #: slack, sms or whatsapp: the address asked about is the agent's on this channel
    channel: str
    #: what the owner answers (`JOIN K7QX`), or what the Join button carries
    code: str
    #: the agent's language (relay.words)
    words: Words = field(default_factory=english, compare=False, repr=False)


@dataclass(frozen=True)
class Note:
    """One answer on a loop, as a message update shows it."""

    agent_id: str
    display: str
    #: the ack's response, or the done's outcome.
    said: str


@dataclass(frozen=True)
class LoopSnapshot:
    """A loop as it stands when its update is sent: every ack, then the done.

    Taken at send time rather than when the answer was queued, so updates that go out of
    order (or several acks) still leave a message showing it all.
    """

    status: str
    acks: tuple[Note, ...] = ()
    done: Note | None = None
    #: the words of the answer that queued this update, for a channel that shows only that.
    latest: str = ""
    #: later signals about the same subject joined to this loop (CONTRACT section 10), oldest
    #: first; None for one whose body retention purged.
    joined: tuple[Signal | None, ...] = ()


@dataclass(frozen=True)
class Delivery:
    """What a provider said. `error` is short and holds no care data."""

    ok: bool
    provider_id: str | None = None
    retryable: bool = False
    retry_after: float | None = None
    error: str | None = None
    #: the agent refused this channel (SMS STOP, Twilio 21610): record the opt-out.
    opted_out: bool = False
    #: not sent, and never to be: a send-time check failed (CONTRACT section 6); the reason.
    skipped: str | None = None
    #: WhatsApp could not reach the agent outside their 24-hour session (no template, or
    #: Twilio 63016): invite them on their next channel.
    outside_session: bool = False
    #: Twilio said the address is not a valid (21211) or not a mobile (21614) number: mark it unverified.
    unverified: bool = False
    #: outside_session: the agent's next channel for the same signal, where the invitation moves (None: none left)
    next_channel: str | None = None


class Channel(Protocol):
    name: str

    async def send(self, invite: Invite) -> Delivery:
        """Deliver the invitation; the provider's message id comes back in `provider_id`."""
        ...

    async def update(self, invite: Invite, provider_id: str, loop: LoopSnapshot) -> Delivery:
        """Tell an already delivered invitation what happened ("Ana is here — soft-checkin")."""
        ...

    async def ask_to_join(self, join: Join) -> Delivery:
        """Ask the agent to confirm their address on this channel: the code, and no care data."""
        ...


def sent(provider_id: str | None = None) -> Delivery:
    return Delivery(ok=True, provider_id=provider_id)


def retry(error: str, retry_after: float | None = None) -> Delivery:
    return Delivery(ok=False, retryable=True, error=error, retry_after=retry_after)


def permanent(
    error: str, *, opted_out: bool = False, outside_session: bool = False, unverified: bool = False
) -> Delivery:
    return Delivery(
        ok=False,
        retryable=False,
        error=error,
        opted_out=opted_out,
        outside_session=outside_session,
        unverified=unverified,
    )


def skip(reason: str) -> Delivery:
    return Delivery(ok=False, retryable=False, error=reason, skipped=reason)


#: the longest wait a Retry-After can ask for; past it the row is retried after an hour
MAX_RETRY_AFTER_SEC = 3600.0


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta-seconds or HTTP-date), at most an hour."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if not math.isfinite(seconds):  # "inf", "nan": no usable wait, so the usual backoff
        return None
    return min(max(0.0, seconds), MAX_RETRY_AFTER_SEC)
