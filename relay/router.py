"""The routing policy: one verified signal in, one `Decision` out (CONTRACT.md 4-5).

Pure: no I/O and no clock reads (`now` is a parameter); every outcome is a value with a
reason, never an exception. Gates run in DESIGN.md order and each is a `care_autonomous`
check; the first failing gate names the status.

Choices made here (keep them in step with the tests):

- Gates 1-5 are all evaluated, so `gate_failures` lists every one that failed (the
  C.A.R.E. audit asks "which gates failed"); the first one decides the status. The
  audience gate runs only when 1-5 pass: who would be reached is never worked out
  for a signal that may not reach anyone.
- Shadow mode records the decision and its gate failures but plans no invitations:
  a `Decision.invitations` is what the inbox queues, so an empty tuple is the only
  value that cannot leak into the outbox.
- `inbox_only` (an AiSHA trigger / state change no covering grant names) is decided
  at the consent gate, so the kill switch, shadow mode and an upstream block still
  take precedence over it.
- `policy_gate_result` is "allowed" for `invited` and `inbox_only`, "blocked" for the
  rest. "escalated" is never produced: the relay's strongest act is already a soft
  invitation to a person, and an uncertain origin is gated as autonomous (seed 003,
  rule 3) and recorded in `origin_uncertain`, not promoted.
- Several covering grants: the audience is their union, but an agent is reached only
  on a channel allowed by a grant whose groups hold that agent.
- A grant's `min_confidence` is checked whenever set; a signal with no or unknown
  confidence does not meet it, nor does an unknown `min_confidence` (fail closed).
- An address its owner has not confirmed (CONTRACT section 8) is passed over like a missing
  one, unless `verify_addresses` is off; an agent left with no channel for that reason is
  skipped as "unverified" (quiet hours, when they also held a channel back, name it first).
- Quiet hours are `[start, end)` in the agent's zone (None or "" means UTC). Quiet hours
  or a zone that cannot be read count as quiet all day: pagers are held back, Slack
  and console still go. `parse_quiet_hours` rejects equal start and end as ambiguous.
- A naive datetime (now, ts, expiries) is read as UTC rather than raising.
- Targets not in the directory are ignored; directory targets outside every granted
  group are recorded in `skipped` as "outside_grant". A repeated agent id counts once
  (its first entry). The throttle is checked before channels; an away agent is skipped
  as "away" before the throttle counts them.
- One loop per moment (CONTRACT section 10): `coalescing_key` names what a signal is about;
  `joined` turns an `invited` decision into `joined` when a loop about the same subject is
  open (the caller looks it up). Only a decision that would invite is joined.
- The actor's yes on their consent page (`decide_on_actor_yes`) is the actor's own instruction
  (`user_directed`): the kill switch, shadow mode, the payload's consent block and the throttle
  do not apply (the yes is the explicit consent); a covering grant and the care window do.
- Invite now (`plan_invite_now`) is a person's instruction: the kill switch, shadow mode,
  the care window and the throttle do not apply; consent and the directory do, and the
  channel is chosen as routing chooses it (verification, away, quiet hours, opt-outs).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from relay.model import (
    AGENT_CHANNELS,
    CONFIDENCE_RANK,
    PAGER_CHANNELS,
    Agent,
    Decision,
    Grant,
    PlannedInvitation,
    RoutingSettings,
    Signal,
)

__all__ = [
    "INBOX_ONLY_TYPES",
    "InvitePlan",
    "actor_consent_covers",
    "coalescing_key",
    "consent_groups",
    "decide",
    "decide_on_actor_yes",
    "in_quiet_hours",
    "joined",
    "needs_address",
    "next_channel",
    "parse_quiet_hours",
    "plan_invite_now",
    "send_time_refusal",
]

#: AiSHA types recorded for triage only, unless a covering grant's scope names them.
INBOX_ONLY_TYPES = frozenset({"care.trigger_detected", "care.state_applied"})

#: The Agent field that holds each channel's address; None: the channel needs none.
_ADDRESS_FIELD: dict[str, str | None] = {"slack": "slack_user", "sms": "phone", "whatsapp": "whatsapp", "console": None}

#: Gate name -> (status when it is the first to fail, reason), in DESIGN.md order.
_GATES = {
    "kill_switch": ("paused", "sending is paused by the kill switch"),
    "shadow_mode": ("shadowed", "shadow mode: decided and recorded, nothing sent"),
    "upstream_blocked": ("blocked", "blocked by the sender's policy gate"),
    "consent": ("pending_consent", "no explicit, unexpired consent grant covers this event type"),
    "payload_consent": ("pending_consent", "the payload's consent is not explicit, in scope and unexpired"),
    "care_window": ("window_passed", "the care window has passed"),
}

_QUIET_HOURS = re.compile(r"([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)")


def parse_quiet_hours(text: str) -> tuple[time, time]:
    """Parse "HH:MM-HH:MM" (24 h, may wrap midnight) into (start, end); ValueError if bad."""
    match = _QUIET_HOURS.fullmatch(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"quiet hours must look like 22:00-07:00, not {text!r}")
    h1, m1, h2, m2 = (int(part) for part in match.groups())
    start, end = time(h1, m1), time(h2, m2)
    if start == end:
        raise ValueError("quiet hours must start and end at different times")
    return start, end


def in_quiet_hours(quiet_hours: str | None, tz: str | None, now: datetime) -> bool:
    """Whether `now` falls in the agent's quiet hours; unreadable hours or zone count as quiet."""
    if quiet_hours is None or not quiet_hours.strip():
        return False
    try:
        start, end = parse_quiet_hours(quiet_hours)
        zone = ZoneInfo(tz) if tz else UTC
    except (ValueError, KeyError):  # ZoneInfoNotFoundError is a KeyError
        # Fail safe: a phone is not paged at 3 a.m. because a setting was mistyped.
        return True
    local = _aware(now).astimezone(zone).time()
    if start < end:
        return start <= local < end
    return local >= start or local < end


def _gate_failures(
    signal: Signal, covering: Sequence[Grant], now: datetime, settings: RoutingSettings, *, inbox_only: bool
) -> list[str]:
    """The gates that stop an invitation, in the contract's order (the first names the status)."""
    failures: list[str] = []
    if not settings.sending_enabled:
        failures.append("kill_switch")
    if settings.shadow_mode:
        failures.append("shadow_mode")
    if signal.policy_gate_result == "blocked":
        failures.append("upstream_blocked")
    if not inbox_only:
        if not covering:
            failures.append("consent")
        if signal.source == "m3" and not _payload_consent_ok(signal, now):
            failures.append("payload_consent")
        if _window_passed(signal, now, settings):
            failures.append("care_window")
    return failures


def decide(
    signal: Signal,
    grants: Sequence[Grant],
    agents: Sequence[Agent],
    *,
    now: datetime,
    settings: RoutingSettings,
    recent_invites: Mapping[str, int] | None = None,
) -> Decision:
    """Decide, without I/O, whether and whom the relay invites for `signal`, and why."""
    now = _aware(now)
    covering = [g for g in grants if _covers(g, signal, now)]
    grant_id = covering[0].id if covering else None

    def decision(
        status: str,
        reason: str,
        *,
        result: str = "blocked",
        failures: tuple[str, ...] = (),
        invitations: tuple[PlannedInvitation, ...] = (),
        skipped: tuple[tuple[str, str], ...] = (),
    ) -> Decision:
        return Decision(
            status=status,
            reason=reason,
            action_origin="care_autonomous",
            policy_gate_result=result,
            gate_failures=failures,
            invitations=invitations,
            origin_uncertain=signal.origin_uncertain,
            grant_id=grant_id,
            skipped=skipped,
        )

    inbox_only = signal.source == "aisha" and signal.type in INBOX_ONLY_TYPES and not covering
    failures = _gate_failures(signal, covering, now, settings, inbox_only=inbox_only)
    if failures:
        status, reason = _GATES[failures[0]]
        if failures[0] == "consent" and _short_on_confidence(grants, signal, now):
            reason = "a consent grant covers this event type only at a higher confidence"
        return decision(status, reason, failures=tuple(failures))
    if inbox_only:
        return decision(
            "inbox_only",
            "recorded for triage; no consent grant names this event type",
            result="allowed",
        )

    invitations, skipped = _route(
        signal, covering, agents, now, settings, {} if recent_invites is None else recent_invites
    )
    if not invitations:
        return decision(
            "unroutable",
            "no reachable agent in the granted groups",
            failures=("audience",),
            skipped=skipped,
        )
    return decision(
        "invited",
        "explicit consent, within care window",
        result="allowed",
        invitations=invitations,
        skipped=skipped,
    )


def needs_address(channel: str) -> bool:
    """Whether a channel reaches an address of the agent's own (and so one they must confirm)."""
    return _ADDRESS_FIELD.get(channel) is not None


def _unconfirmed(agent: Agent, channel: str, settings: RoutingSettings) -> bool:
    return settings.verify_addresses and needs_address(channel) and channel not in agent.verified


def send_time_refusal(  # noqa: PLR0911 - one return per reason, in the contract's order
    signal: Signal,
    agent: Agent,
    channel: str,
    grants: Sequence[Grant],
    *,
    now: datetime,
    loop_open: bool = True,
    verify_addresses: bool = True,
) -> str | None:
    """Why an invitation decided earlier must not go out now, or None (CONTRACT section 6).

    Checked just before each send, whatever queued it (intake, a person's retry): the loop
    is still open (a person may have closed it while the invitation waited, `loop_closed`),
    the agent is still active and not away, the address is still confirmed by its owner, a live grant still covers the signal for this agent on this
    channel, and a pager channel is not in the agent's quiet hours. The answer is the
    contract's reason word (`agent_inactive`, `away`, `unverified`, `consent_revoked`, `quiet_hours`). A refusal
    is final: the invitation is skipped, audited, never sent later.
    """
    now = _aware(now)
    if not loop_open:
        return "loop_closed"
    if not agent.active:
        return "agent_inactive"
    if agent.away:  # section 10: the agent said they are away since this was queued
        return "away"
    if _unconfirmed(agent, channel, RoutingSettings(verify_addresses=verify_addresses)):
        return "unverified"
    if not any(
        _covers(g, signal, now) and _in_audience(agent, signal, g) and (not g.channels or channel in g.channels)
        for g in grants
    ):
        return "consent_revoked"
    if channel in PAGER_CHANNELS and in_quiet_hours(agent.quiet_hours, agent.tz, now):
        return "quiet_hours"
    return None


def consent_groups(signal: Signal, directory_groups: set[str]) -> tuple[str, ...]:
    """The groups of an M3 signal's audience that name a directory group: what its actor's
    consent page asks about (CONTRACT section 10); empty: no page."""
    if signal.source != "m3":
        return ()
    return tuple(dict.fromkeys(g for g in signal.groups if g in directory_groups))


def actor_consent_covers(signal: Signal, grants: Sequence[Grant], groups: Sequence[str], *, now: datetime) -> bool:
    """Whether the grants the signal's actor made themselves (by `actor:<id>`) cover this signal:
    at least one covers it as routing judges coverage (subject, type, live, confidence), and
    together those name every group its consent page asks about (CONTRACT section 10)."""
    now = _aware(now)
    mine = [g for g in grants if g.by == signal.subject and _covers(g, signal, now)]
    named = {group for g in mine for group in g.groups}
    return bool(mine) and set(groups) <= named


def decide_on_actor_yes(
    signal: Signal, grants: Sequence[Grant], agents: Sequence[Agent], *, now: datetime, settings: RoutingSettings
) -> Decision:
    """The signal decided again after its actor said yes on the consent page (CONTRACT section 10)."""
    now = _aware(now)
    covering = [g for g in grants if _covers(g, signal, now)]
    grant_id = covering[0].id if covering else None
    if not covering:
        status, reason = _GATES["consent"]
        return Decision(status, reason, "user_directed", "blocked", ("consent",), grant_id=grant_id)
    if _window_passed(signal, now, settings):
        status, reason = _GATES["care_window"]
        return Decision(status, reason, "user_directed", "blocked", ("care_window",), grant_id=grant_id)
    unthrottled = replace(settings, agent_max_invites_per_hour=2**31)
    invitations, skipped = _route(signal, covering, agents, now, unthrottled, {})
    if not invitations:
        reason = "the actor consented; no reachable agent in the granted groups"
        return Decision("unroutable", reason, "user_directed", "blocked", ("audience",), skipped=skipped)
    reason = "the actor consented on their consent page, within care window"
    return Decision(
        "invited", reason, "user_directed", "allowed", invitations=invitations, grant_id=grant_id, skipped=skipped
    )


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _live(grant: Grant, now: datetime) -> bool:
    return grant.revoked_at is None and (grant.expires_at is None or _aware(grant.expires_at) > now)


def _meets_confidence(grant: Grant, signal: Signal) -> bool:
    if grant.min_confidence is None:
        return True
    needed = CONFIDENCE_RANK.get(grant.min_confidence)
    given = CONFIDENCE_RANK.get(signal.confidence or "")
    return needed is not None and given is not None and given >= needed


def _covers(grant: Grant, signal: Signal, now: datetime) -> bool:
    return (
        grant.subject == signal.subject
        and signal.type in grant.scope
        and _live(grant, now)
        and _meets_confidence(grant, signal)
    )


def _short_on_confidence(grants: Sequence[Grant], signal: Signal, now: datetime) -> bool:
    return any(g.subject == signal.subject and signal.type in g.scope and _live(g, now) for g in grants)


def _payload_consent_ok(signal: Signal, now: datetime) -> bool:
    consent = signal.payload_consent
    return (
        consent is not None
        and consent.mode == "explicit"
        and signal.type in consent.scope
        and (consent.expires_at is None or _aware(consent.expires_at) > now)
    )


def _window_passed(signal: Signal, now: datetime, settings: RoutingSettings) -> bool:
    if signal.source == "aisha":
        minutes: int | None = settings.aisha_care_window_minutes
    else:
        minutes = signal.care_window_minutes
    if minutes is None:
        return False
    # now - ts, not ts + window: a sender's ts may sit at the end of the calendar, where the sum overflows
    return now - _aware(signal.ts) > timedelta(minutes=minutes)


def _in_audience(agent: Agent, signal: Signal, grant: Grant) -> bool:
    granted = set(agent.groups) & set(grant.groups)
    if not granted:
        return False
    if signal.source == "m3":
        return bool(granted & set(signal.groups)) or agent.id in signal.targets
    return True


def next_channel(
    signal: Signal, agent: Agent, grants: Sequence[Grant], *, now: datetime, settings: RoutingSettings, tried: str
) -> str | None:
    """The agent's first usable channel for this signal other than `tried`, or None.

    For an invitation a channel could not deliver (WhatsApp outside the 24-hour session):
    the same choice as at intake, among the live grants that still cover the signal for the
    agent, with the channel that failed left out.
    """
    now = _aware(now)
    covering = [g for g in grants if _covers(g, signal, now) and _in_audience(agent, signal, g)]
    if not covering or not agent.active or agent.away:
        return None
    channel, _ = _pick_channel(agent, covering, now, settings, skip=frozenset({tried}))
    return channel


def _pick_channel(
    agent: Agent, grants: Sequence[Grant], now: datetime, settings: RoutingSettings, skip: frozenset[str] = frozenset()
) -> tuple[str | None, str]:
    """The first usable channel of the agent's, or None and why none was."""
    held_by_quiet_hours = held_unconfirmed = False
    for channel in agent.channels or AGENT_CHANNELS:
        if channel in skip or channel not in _ADDRESS_FIELD or channel not in settings.configured_channels:
            continue
        if not any(not g.channels or channel in g.channels for g in grants):
            continue
        address_field = _ADDRESS_FIELD[channel]
        if address_field is not None and not getattr(agent, address_field):
            continue
        if channel in agent.opted_out:
            continue
        if _unconfirmed(agent, channel, settings):
            held_unconfirmed = True
            continue
        if channel in PAGER_CHANNELS and in_quiet_hours(agent.quiet_hours, agent.tz, now):
            held_by_quiet_hours = True
            continue
        return channel, ""
    if held_by_quiet_hours:
        return None, "quiet_hours"
    return None, "unverified" if held_unconfirmed else "no_channel"


def _route(
    signal: Signal,
    covering: Sequence[Grant],
    agents: Sequence[Agent],
    now: datetime,
    settings: RoutingSettings,
    recent_invites: Mapping[str, int],
) -> tuple[tuple[PlannedInvitation, ...], tuple[tuple[str, str], ...]]:
    invitations: list[PlannedInvitation] = []
    skipped: list[tuple[str, str]] = []
    seen: set[str] = set()
    # an agent in none of the covering grants' groups, and not named, is passed over at once
    # (one set test, not one per grant): the directory is read for every signal
    granted_groups = frozenset(group for grant in covering for group in grant.groups)
    for agent in agents:
        if agent.id in seen:
            continue
        seen.add(agent.id)
        if granted_groups.isdisjoint(agent.groups) and agent.id not in signal.targets:
            continue
        grants = [g for g in covering if _in_audience(agent, signal, g)]
        if not grants:
            if agent.id in signal.targets:
                skipped.append((agent.id, "outside_grant"))
            continue
        if not agent.active:
            skipped.append((agent.id, "inactive"))
            continue
        if agent.away:
            skipped.append((agent.id, "away"))
            continue
        if recent_invites.get(agent.id, 0) >= settings.agent_max_invites_per_hour:
            skipped.append((agent.id, "throttled"))
            continue
        channel, why = _pick_channel(agent, grants, now, settings)
        if channel is None:
            skipped.append((agent.id, why))
            continue
        invitations.append(PlannedInvitation(agent_id=agent.id, channel=channel))
    return tuple(sorted(invitations, key=lambda inv: inv.agent_id)), tuple(sorted(skipped))


def coalescing_key(signal: Signal) -> str:
    """What a signal is about, hashed (64 hex characters): M3 the source and actor, AiSHA the
    tenant, entity type and entity id. Two signals with one key are about the same moment."""
    if signal.source == "aisha":
        parts = [signal.source, signal.subject, signal.entity_type or "", signal.entity_id or ""]
    else:
        parts = [signal.source, signal.subject]
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def joined(decision: Decision) -> Decision:
    """The decision of a signal that would invite while a loop about its subject is open:
    `joined`, nobody new invited (the open loop is told instead)."""
    return replace(
        decision,
        status="joined",
        reason="a loop about the same subject is open: joined to it, nobody new invited",
        invitations=(),
        skipped=(),
    )


@dataclass(frozen=True)
class InvitePlan:
    """What invite now may do: `consent` False refuses it all; else each agent's channel or why none."""

    consent: bool
    #: agent id → the channel to invite them on
    channels: Mapping[str, str]
    #: agent id → why they cannot be invited ("not_in_directory", "inactive", "outside_grant",
    #: "away", "quiet_hours", "unverified", "no_channel")
    refused: Mapping[str, str]


def plan_invite_now(
    signal: Signal, grants: Sequence[Grant], agents: Mapping[str, Agent | None], *, now: datetime,
    settings: RoutingSettings,
) -> InvitePlan:  # fmt: skip
    """Invite now, without I/O: consent first (a live grant, and for M3 the payload's explicit
    consent), then for each named agent (`None`: not in the directory) the channel routing
    would pick. The autonomy gates (kill switch, shadow mode, window, throttle) are not asked."""
    now = _aware(now)
    covering = [g for g in grants if _covers(g, signal, now)]
    if not covering or (signal.source == "m3" and not _payload_consent_ok(signal, now)):
        return InvitePlan(consent=False, channels={}, refused={})
    channels: dict[str, str] = {}
    refused: dict[str, str] = {}
    for agent_id, agent in agents.items():
        if agent is None:
            refused[agent_id] = "not_in_directory"
            continue
        mine = [g for g in covering if _in_audience(agent, signal, g)]
        if not mine:
            refused[agent_id] = "outside_grant"
        elif not agent.active:
            refused[agent_id] = "inactive"
        elif agent.away:
            refused[agent_id] = "away"
        else:
            channel, why = _pick_channel(agent, mine, now, settings)
            if channel is None:
                refused[agent_id] = why
            else:
                channels[agent_id] = channel
    return InvitePlan(consent=True, channels=channels, refused=refused)
