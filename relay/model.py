"""The relay's values: what a signal, an agent, a grant and a decision are.

Plain frozen dataclasses, shared by the receivers (which build a `Signal`), the
router (which turns one into a `Decision`) and the inbox (which stores both).
Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import Literal

#: the wall clock, Unix seconds: one per app, passed in by `create_app` (tests drive it).
Clock = Callable[[], float]


def millis(clock: Clock) -> int:
    """The clock's time in Unix milliseconds, as storage keeps times."""
    return int(clock() * 1000)


Source = Literal["m3", "aisha"]
Channel = Literal["slack", "sms", "whatsapp", "console"]

#: Every status a loop can show (CONTRACT.md section 4).
LOOP_STATUSES = (
    "invited",
    "pending_consent",
    "window_passed",
    "blocked",
    "shadowed",
    "paused",
    "unroutable",
    "inbox_only",
    #: a later signal about the subject of an open loop: shown on that loop (CONTRACT section 10)
    "joined",
    "acked",
    "done",
)
#: The channels an agent can name with --channels, in the default preference order.
AGENT_CHANNELS: tuple[str, ...] = ("slack", "sms", "whatsapp")
#: Channels that page a phone; quiet hours hold them back (never for later).
PAGER_CHANNELS = frozenset({"sms", "whatsapp"})
CONFIDENCE_RANK = {"low": 0, "medium": 1, "high": 2}

#: the instants every stored millisecond value must fall between (both databases, any reader)
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)


def from_ms(ms: int) -> datetime:
    """A stored Unix-millisecond value as an aware UTC datetime; never raises.

    Values outside what a datetime can hold (a row written by an older version, or by
    hand) read as the nearest end of the calendar: one odd row must not stop a read.
    """
    try:
        return datetime.fromtimestamp(ms / 1000, UTC)
    except (OverflowError, OSError, ValueError):
        return LATEST if ms > 0 else EARLIEST


def iso(ms: int) -> str:
    """A stored Unix-millisecond value as ISO 8601 UTC (`2026-01-07T10:12:00Z`); never raises."""
    return from_ms(ms).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class PayloadConsent:
    """The consent block an M3 sender put in its own payload."""

    mode: str
    scope: tuple[str, ...] = ()
    expires_at: datetime | None = None


@dataclass(frozen=True)
class Signal:
    """One verified, parsed inbound event, whichever sender it came from."""

    source: Source
    event_id: str
    type: str
    ts: datetime
    #: `actor:<id>` (M3) or `tenant:<uuid>` (AiSHA): what consent grants are keyed on.
    subject: str
    actor_display: str | None = None
    groups: tuple[str, ...] = ()
    #: directory agent ids named by `user:<id>` targets.
    targets: tuple[str, ...] = ()
    whisper: str | None = None
    suggested_responses: tuple[str, ...] = ()
    care_window_minutes: int | None = None
    payload_consent: PayloadConsent | None = None
    nonce: str | None = None
    # C.A.R.E. (AiSHA) fields; None for M3.
    action_origin: str = "care_autonomous"
    #: True when the sender gave no (or an unknown) action_origin and we assumed autonomous.
    origin_uncertain: bool = False
    policy_gate_result: str | None = None
    reason: str | None = None
    reasons: tuple[str, ...] = ()
    confidence: str | None = None
    deep_link: str | None = None
    entity_type: str | None = None
    entity_id: str | None = None
    signal_entity_type: str | None = None
    signal_entity_id: str | None = None
    trigger_type: str | None = None
    care_state: str | None = None
    #: M3 `status.set`: the sender's `context.status` ("yellow") and `context.note` ("low energy").
    context_status: str | None = None
    context_note: str | None = None
    #: AiSHA `meta.subject`: what the signal is about, in the sender's words.
    about: str | None = None


@dataclass(frozen=True)
class Agent:
    """An internal person in the admin-managed directory."""

    id: str
    display: str
    groups: tuple[str, ...] = ()
    slack_user: str | None = None
    phone: str | None = None
    whatsapp: str | None = None
    #: order of preference; empty means the default (slack, sms, whatsapp).
    channels: tuple[str, ...] = ()
    quiet_hours: str | None = None  # "22:00-07:00"
    tz: str | None = None  # "Europe/Bucharest"
    active: bool = True
    #: channels this agent opted out of (SMS STOP, Twilio 21610).
    opted_out: frozenset[str] = frozenset()
    #: channels whose current address the agent confirmed (JOIN, the Join button; CONTRACT section 8).
    verified: frozenset[str] = frozenset()
    #: the language the agent reads (relay.labels.LOCALES); None: RELAY_DEFAULT_LOCALE.
    locale: str | None = None
    #: the agent said they are away (CONTRACT section 10); only a person changes it.
    away: bool = False


@dataclass(frozen=True)
class Grant:
    """An explicit consent grant for one subject, recorded by an admin."""

    id: str
    subject: str
    scope: tuple[str, ...]
    groups: tuple[str, ...]
    by: str
    granted_at: datetime
    #: empty means every channel.
    channels: tuple[str, ...] = ()
    min_confidence: str | None = None
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    revoked_by: str | None = None

    @cached_property
    def group_set(self) -> frozenset[str]:
        """`groups` as a set, made once per grant: routing asks it once per agent per signal."""
        return frozenset(self.groups)


@dataclass(frozen=True)
class PlannedInvitation:
    """One soft message to one agent on one channel, as decided."""

    agent_id: str
    channel: str


@dataclass(frozen=True)
class Decision:
    """What the relay decided to do with a signal, and why (C.A.R.E. action origin)."""

    status: str
    reason: str
    action_origin: str = "care_autonomous"
    policy_gate_result: str = "blocked"
    gate_failures: tuple[str, ...] = ()
    invitations: tuple[PlannedInvitation, ...] = ()
    origin_uncertain: bool = False
    grant_id: str | None = None
    #: agents passed over and why ("quiet_hours", "throttled", "no_channel"); no care data.
    skipped: tuple[tuple[str, str], ...] = field(default=())


@dataclass(frozen=True)
class RoutingSettings:
    """The part of the settings the router reads; a value, so tests build it directly."""

    sending_enabled: bool = True
    shadow_mode: bool = False
    agent_max_invites_per_hour: int = 6
    aisha_care_window_minutes: int = 240
    #: channels that can send right now (configured credentials, or console in dev).
    configured_channels: frozenset[str] = frozenset()
    #: an address must be confirmed by its owner before invitations go there (RELAY_VERIFY_ADDRESSES).
    verify_addresses: bool = True


@dataclass(frozen=True)
class LoopFacts:
    """What storage knows, inside the answer's own transaction, for `relay.loop.judge`."""

    signal_id: int
    source: str
    event_id: str
    #: the loop's status (LOOP_STATUSES); "done" closes it.
    status: str
    #: the answering agent holds a (not skipped) invitation of this loop.
    holds: bool
    #: the agent of the invitation the answer names; None when it names none.
    named_holder: str | None
    #: the answering agent is in the directory (a removed one's tombstone included).
    known: bool
    #: the answering agent is in the directory, active, and not removed.
    active: bool
    #: retention dropped the sender's body: nothing is left to word the loop with.
    purged: bool
    #: the answering agent's display name (their id when unknown).
    display: str
    #: the answering agent has acked this loop (a "not now" is then refused).
    acked: bool = False
