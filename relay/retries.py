"""When a failed outbox attempt is tried again, and which attempt is the last, for each kind.

The schedules (CONTRACT section 6): invitations, message updates and join codes back off
from 1 s doubling to 60 s (±20 % jitter, `Retry-After` honoured) for
RELAY_OUTBOX_MAX_ATTEMPTS attempts; callbacks to senders wait RELAY_CALLBACK_SCHEDULE's
steps (±20 %, a `Retry-After` only ever lengthening one) for one attempt more than it has
steps; forwards back off like invitations for 1 + CARE_WORKFLOW_WEBHOOK_MAX_RETRIES
attempts. Pure: the outbox worker asks, and stores what it is told.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from relay.delivery import Delivery
from relay.settings import Settings


def backoff(attempts: int, *, jitter: float | None = None) -> float:
    """Seconds before the next attempt: 1 s doubling to 60 s, ±20 %."""
    base = min(60.0, 2.0 ** max(0, attempts - 1))
    # jitter only spreads retries apart; nothing secret depends on it
    return base * (1 + (random.uniform(-0.2, 0.2) if jitter is None else jitter))  # noqa: S311


def scheduled(attempts: int, schedule: Sequence[int], *, jitter: float | None = None) -> float:
    """Seconds before the retry that follows attempt number `attempts`: that step of the schedule, ±20 %."""
    base = float(schedule[min(max(attempts, 1), len(schedule)) - 1])
    return base * (1 + (random.uniform(-0.2, 0.2) if jitter is None else jitter))  # noqa: S311


def max_attempts(kind: str, settings: Settings) -> int:
    """How many attempts a row of this kind gets in all."""
    if kind == "forward":
        return 1 + settings.care_workflow_webhook_max_retries
    if kind == "callback":
        return 1 + len(settings.relay_callback_schedule)
    return settings.relay_outbox_max_attempts


def is_final(kind: str, attempts: int, delivery: Delivery, settings: Settings) -> bool:
    """A failure that ends the row: not retryable, or its last attempt."""
    return (
        not delivery.ok
        and delivery.skipped is None
        and (not delivery.retryable or attempts >= max_attempts(kind, settings))
    )


def wait(kind: str, attempts: int, delivery: Delivery, settings: Settings) -> float:
    """Seconds before the next attempt of a row whose attempt number `attempts` failed."""
    if kind == "callback":
        # a sender's Retry-After may push a step later, never earlier: the schedule is the promise
        step = scheduled(attempts, settings.relay_callback_schedule)
        return max(step, delivery.retry_after or 0.0)
    return delivery.retry_after if delivery.retry_after is not None else backoff(attempts)
