"""The relay's operational figures, in Prometheus's model (`prometheus_client`), one registry per app.

Every figure is about the relay, never about people (CONTRACT section 5, rule 5): a label
value is a route template, a method, a status, a sender, a channel, a kind of work or an
error code, never an agent, actor, tenant, entity, event, phone number or Slack user, and
every label's values come from a short fixed set (a method the relay does not serve is
`OTHER`), so nobody can grow a series per request.

Counting sits on intake's hot path: a label set's child is looked up once and kept, so a
request costs two dictionary look-ups, an increment and an observation.
`care_relay_outbox_rows` and `care_relay_outbox_oldest_due_seconds` are read from the
database at scrape time (`set_outbox`), not kept here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from relay.model import Decision

__all__ = ["CONTENT_TYPE", "UNMATCHED", "Metrics", "OutboxFigure"]

#: the Prometheus text format, version 0.0.4
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: the route label of a request that matched no route (never its path)
UNMATCHED = "(unmatched)"
#: the methods the relay serves; any other is counted as OTHER
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
OTHER = "OTHER"
#: seconds; intake answers in about a millisecond, a provider round trip in tens to hundreds
DURATION_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: a checkpoint copies a quarter second of writes: milliseconds normally, longer on a slow disk
CHECKPOINT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


@dataclass(frozen=True)
class OutboxFigure:
    """Outbox rows of one kind and status, and (pending only) the earliest `next_attempt_at`, Unix ms."""

    kind: str
    status: str
    rows: int
    earliest_due_ms: int | None = None


class Metrics:
    """The families of one app, on their own registry (two apps in one process share no counts)."""

    def __init__(self, version: str = "unknown") -> None:
        self.registry = registry = CollectorRegistry(auto_describe=True)
        self.http_requests = Counter(
            "care_relay_http_requests",
            "HTTP requests answered, by method, route template and status.",
            ("method", "route", "status"),
            registry=registry,
        )
        self.http_duration = Histogram(
            "care_relay_http_request_duration_seconds",
            "Time from a request's arrival at the app to its answer, by route template.",
            ("route",),
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.signals = Counter(
            "care_relay_signals",
            "Signals accepted from senders, by sender and the status decided (duplicate: a replay answered 200).",
            ("source", "status"),
            registry=registry,
        )
        self.invitations = Counter(
            "care_relay_invitations",
            "Invitations by channel and what became of them: queued by intake, then sent, skipped, failed or moved"
            " (WhatsApp outside the session: invited on the agent's next channel).",
            ("channel", "status"),
            registry=registry,
        )
        self.answers = Counter(
            "care_relay_answers",
            "Answers from agents by channel: ack and done recorded, refused (a stranger, a closed loop, a repeat).",
            ("channel", "kind"),
            registry=registry,
        )
        self.unknown_senders = Counter(
            "care_relay_unknown_senders",
            "Messages or presses from an address or Slack user not in the directory, by channel.",
            ("channel",),
            registry=registry,
        )
        self.inbound_messages = Counter(
            "care_relay_inbound_messages",
            "SMS and WhatsApp messages in, by channel and result (answered, replayed, unknown, unknown_limited).",
            ("channel", "result"),
            registry=registry,
        )
        self.delivery_reports = Counter(
            "care_relay_delivery_reports",
            "Providers' delivery reports (Twilio status callbacks), by the status reported (unknown_sid: no such message).",
            ("status",),
            registry=registry,
        )
        self.outbox_attempts = Counter(
            "care_relay_outbox_attempts",
            "Outbox attempts by kind of work and result: sent, retry, failed (after the last attempt), skipped or moved.",
            ("kind", "result"),
            registry=registry,
        )
        self.rejections = Counter(
            "care_relay_rejections",
            "Requests refused with one of the contract's error codes, by code.",
            ("code",),
            registry=registry,
        )
        self.storage_unavailable = Counter(
            "care_relay_storage_unavailable",
            "Requests answered 503 because the database could not answer.",
            registry=registry,
        )
        self.outbox_rows = Gauge(
            "care_relay_outbox_rows",
            "Outbox rows not done (pending, sending, failed) by kind and status, read from the database at scrape time.",
            ("kind", "status"),
            registry=registry,
        )
        self.outbox_oldest_due = Gauge(
            "care_relay_outbox_oldest_due_seconds",
            "How long the longest-waiting due pending row of each kind has been due (0: none), at scrape time.",
            ("kind",),
            registry=registry,
        )
        self.checkpoint_duration = Histogram(
            "care_relay_sqlite_checkpoint_duration_seconds",
            "SQLite: how long each checkpoint held the writer (copying the write-ahead log into the database); "
            "intake waits that long.",
            buckets=CHECKPOINT_BUCKETS,
            registry=registry,
        )
        self.build_info = Gauge(
            "care_relay_build_info", "The running relay's version (always 1).", ("version",), registry=registry
        )
        self.build_info.labels(version).set(1)
        self._requests: dict[tuple[str, str, int], Any] = {}
        self._durations: dict[str, Any] = {}
        self._signals: dict[tuple[str, str], Any] = {}

    def request(self, method: str, route: str, status: int, seconds: float) -> None:
        """One answered request (the hot path: the label children are kept after first use)."""
        key = (method if method in METHODS else OTHER, route, status)
        child = self._requests.get(key)
        if child is None:
            child = self._requests[key] = self.http_requests.labels(key[0], route, str(status))
        child.inc()
        timer = self._durations.get(route)
        if timer is None:
            timer = self._durations[route] = self.http_duration.labels(route)
        timer.observe(seconds)

    def signal(self, source: str, status: str, duplicate: bool, decision: Decision | None) -> None:
        """A signal answered by intake: its status (or `duplicate`), and the invitations it queued by channel."""
        key = (source, "duplicate" if duplicate else status)
        child = self._signals.get(key)
        if child is None:
            child = self._signals[key] = self.signals.labels(*key)
        child.inc()
        if decision is not None:
            for planned in decision.invitations:
                self.invitations.labels(planned.channel, "queued").inc()

    def set_outbox(
        self, figures: Iterable[OutboxFigure], *, kinds: Iterable[str], statuses: Iterable[str], now_ms: int
    ) -> None:
        """Replace the outbox gauges with a fresh reading (every kind and status shown, zeros too)."""
        rows = {(f.kind, f.status): f for f in figures}
        self.outbox_rows.clear()
        self.outbox_oldest_due.clear()
        for kind in kinds:
            for status in statuses:
                found = rows.get((kind, status))
                self.outbox_rows.labels(kind, status).set(found.rows if found else 0)
            pending = rows.get((kind, "pending"))
            due = pending.earliest_due_ms if pending is not None else None
            self.outbox_oldest_due.labels(kind).set(max(0.0, (now_ms - due) / 1000) if due is not None else 0.0)

    def render(self) -> bytes:
        """Every family, in the Prometheus text format."""
        return generate_latest(self.registry)
