"""Whether consent covers a signal: the grants that name it, the agents they reach, the payload's own.

Pure: no I/O and no clock reads (`now` is a parameter: aware, except that
`actor_consent_covers` reads a naive one as UTC itself).

- A grant covers a signal when it names the signal's subject and type, is neither revoked
  nor expired, and the signal meets its `min_confidence`.
- A grant's `min_confidence` is checked whenever set; a signal with no or unknown
  confidence does not meet it, nor does an unknown `min_confidence` (fail closed).
- An agent is in a grant's audience when they share a group with it; for M3, one of those
  groups must also be named by the signal, or the agent named among its targets.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from relay.model import CONFIDENCE_RANK, Agent, Grant, Signal
from relay.timing import aware

__all__ = [
    "actor_consent_covers",
    "covers",
    "in_audience",
    "payload_consent_ok",
    "short_on_confidence",
]


def _live(grant: Grant, now: datetime) -> bool:
    return grant.revoked_at is None and (grant.expires_at is None or aware(grant.expires_at) > now)


def _meets_confidence(grant: Grant, signal: Signal) -> bool:
    if grant.min_confidence is None:
        return True
    needed = CONFIDENCE_RANK.get(grant.min_confidence)
    given = CONFIDENCE_RANK.get(signal.confidence or "")
    return needed is not None and given is not None and given >= needed


def covers(grant: Grant, signal: Signal, now: datetime) -> bool:
    """Whether `grant` covers `signal` at `now`: subject, type, live, confidence."""
    return (
        grant.subject == signal.subject
        and signal.type in grant.scope
        and _live(grant, now)
        and _meets_confidence(grant, signal)
    )


def short_on_confidence(grants: Sequence[Grant], signal: Signal, now: datetime) -> bool:
    """Whether a live grant would cover the signal but for its confidence."""
    return any(g.subject == signal.subject and signal.type in g.scope and _live(g, now) for g in grants)


def payload_consent_ok(signal: Signal, now: datetime) -> bool:
    """Whether the payload's own consent is explicit, names the signal's type and is unexpired."""
    consent = signal.payload_consent
    return (
        consent is not None
        and consent.mode == "explicit"
        and signal.type in consent.scope
        and (consent.expires_at is None or aware(consent.expires_at) > now)
    )


def in_audience(agent: Agent, signal: Signal, grant: Grant) -> bool:
    """Whether `grant` reaches `agent` for this signal."""
    granted = grant.group_set
    if granted.isdisjoint(agent.groups):
        return False
    if signal.source == "m3":  # one of the agent's granted groups is one the signal names, or it names the agent
        return agent.id in signal.targets or any(g in granted and g in signal.groups for g in agent.groups)
    return True


def actor_consent_covers(signal: Signal, grants: Sequence[Grant], groups: Sequence[str], *, now: datetime) -> bool:
    """Whether the grants the signal's actor made themselves (by `actor:<id>`) cover this signal:
    at least one covers it as routing judges coverage (subject, type, live, confidence), and
    together those name every group its consent page asks about (CONTRACT section 10)."""
    now = aware(now)
    mine = [g for g in grants if g.by == signal.subject and covers(g, signal, now)]
    named = {group for g in mine for group in g.groups}
    return bool(mine) and set(groups) <= named
