"""Intake: a verified, parsed signal becomes a stored loop with its decision.

The signal, the routing decision, its audit row and every queued invitation are
committed in one writer transaction, so a 202 means all of it is on disk. Intake
items are handed to the writer as a batch (`Writer.run_batched`): the group's
directory check, id and nonce look-ups happen once, rows go in with `executemany`,
and the throttle counts every invitation decided before, in this batch too. The
look-ups run inside the write transaction; on SQLite nobody else can write between
them and the inserts, and on PostgreSQL each intake transaction first takes one
advisory lock, so replicas sharing a database take turns the same way (without it, two
replicas could each count an agent under the hourly limit). The unique constraints stay
as the last word: an insert that still collides sends the group down the writer's slow
path, where each item is redone alone and its look-up finds the other row.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from inbox import directory, invitations, outbox, signals
from inbox.audit import AuditValues, insert_audits
from inbox.rows import dumps, dumps_list
from inbox.signals import SignalValues
from inbox.tx import Tx
from inbox.writer import Writer
from relay import audit
from relay.errors import EventIdConflictError, NonceReusedError, RelayError
from relay.model import Agent, Decision, Grant, RoutingSettings, Signal
from relay.router import decide

HOUR_MS = 3_600_000
#: the PostgreSQL advisory lock intake groups hold for their transaction ("care" in ASCII)
INTAKE_LOCK = 0x63617265


@dataclass(frozen=True)
class IntakeResult:
    source: str
    event_id: str
    status: str
    duplicate: bool
    decision: Decision | None = None


@dataclass(frozen=True)
class _Item:
    signal: Signal
    body: bytes
    digest: str


class DirectoryCache:
    """Agents and live grants, reloaded when the directory version moves.

    Only writer jobs touch it, one at a time, so it needs no lock.
    """

    def __init__(self) -> None:
        self._version = -1
        self._group = -1
        self.agents: tuple[Agent, ...] = ()
        self.grants: tuple[Grant, ...] = ()

    def refresh(self, tx: Tx) -> None:
        """Reload when the directory moved; checked once per commit group."""
        if tx.group == self._group:
            return
        self._group = tx.group
        version = directory.directory_version(tx)
        if version != self._version:
            agents, grants = directory.load_directory(tx)
            self.agents = tuple(a.as_agent() for a in agents)
            self.grants = tuple(g.as_grant() for g in grants)
            self._version = version


class Intake:
    def __init__(
        self,
        writer: Writer,
        routing: RoutingSettings,
        *,
        on_queued: Callable[[], None] = lambda: None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        forward_escalations: bool = False,
    ) -> None:
        self._writer = writer
        self._routing = routing
        self._on_queued = on_queued
        self._clock = clock
        #: PR8 forwarding: an autonomous action, so the caller folds in the kill switch and shadow mode.
        self._forward = forward_escalations
        self._directory = DirectoryCache()

    async def receive(self, signal: Signal, body: bytes) -> IntakeResult:
        """Store the signal with its decision; duplicates answer with the current status."""
        item = _Item(signal, body, hashlib.sha256(body).hexdigest())
        result: IntakeResult = await self._writer.run_batched(self._apply, item)
        if result.decision is not None:
            d = result.decision
            audit.emit(
                {
                    "kind": "decision",
                    "source": signal.source,
                    "event_id": signal.event_id,
                    "type": signal.type,
                    "status": d.status,
                    "action_origin": d.action_origin,
                    "origin_uncertain": d.origin_uncertain,
                    "policy_gate_result": d.policy_gate_result,
                    "reason": d.reason,
                    "gate_failures": list(d.gate_failures),
                    "invitations": len(d.invitations),
                }
            )
            if d.invitations or (self._forward and signal.type == "care.escalation_detected"):
                self._on_queued()
        return result

    def _apply(self, tx: Tx, items: list[_Item]) -> list[IntakeResult | RelayError]:
        """Decide and store a batch; answers each item (a result, or the error to raise)."""
        now = self._clock()
        at = int(now.timestamp() * 1000)
        if tx.dialect == "postgresql":
            # Replicas take turns, as SQLite's write lock makes one process do: the throttle's
            # counts, the id and nonce look-ups and the inserts are one step across the cluster.
            tx.execute("SELECT pg_advisory_xact_lock(?)", (INTAKE_LOCK,))
        self._directory.refresh(tx)
        agents = self._directory.agents
        recent = invitations.recent_invites(tx, (a.id for a in agents), at - HOUR_MS)
        known: dict[tuple[str, str], tuple[int, str, str]] = {}
        used: dict[tuple[str, str], str] = {}
        for source in {i.signal.source for i in items}:
            mine = [i.signal for i in items if i.signal.source == source]
            known.update(
                {(source, e): v for e, v in signals.known_signals(tx, source, [s.event_id for s in mine]).items()}
            )
            nonces = [s.nonce for s in mine if s.nonce is not None]
            used.update({(source, n): e for n, e in signals.known_nonces(tx, source, nonces).items()})

        answers: list[IntakeResult | RelayError] = []
        plain_rows: list[SignalValues] = []
        nonce_rows: list[tuple[str, str, str, int]] = []
        audit_rows: list[AuditValues] = []
        for item in items:
            signal = item.signal
            key = (signal.source, signal.event_id)
            if key in known:
                answers.append(_replay(signal, known[key], item.digest))
                continue
            if signal.nonce is not None and used.get((signal.source, signal.nonce), signal.event_id) != signal.event_id:
                answers.append(NonceReusedError())
                continue
            decision = decide(
                signal, self._directory.grants, agents, now=now, settings=self._routing, recent_invites=recent
            )
            row = _signal_values(signal, item, decision, at)
            if decision.invitations or _shown_skips(decision) or self._forwards(signal):
                # work rows need the signal's id; plain INSERT: a replica's race is a unique violation
                signal_id = signals.insert_signal_returning_id(tx, row)
                self._queue_work(tx, signal, signal_id, decision, at, recent)
            else:
                plain_rows.append(row)
            if signal.nonce is not None:
                nonce_rows.append((signal.source, signal.nonce, signal.event_id, at))
            known[key] = (0, decision.status, item.digest)
            if signal.nonce is not None:
                used[(signal.source, signal.nonce)] = signal.event_id
            audit_rows.append(_audit_row(signal, decision, at))
            answers.append(
                IntakeResult(signal.source, signal.event_id, decision.status, duplicate=False, decision=decision)
            )
        signals.insert_signals(tx, plain_rows)
        signals.insert_nonces(tx, nonce_rows)
        insert_audits(tx, audit_rows)
        return answers

    def _forwards(self, signal: Signal) -> bool:
        return self._forward and signal.type == "care.escalation_detected"

    def _queue_work(
        self, tx: Tx, signal: Signal, signal_id: int, decision: Decision, at: int, recent: dict[str, int]
    ) -> None:
        for planned in decision.invitations:
            code = invitations.new_code(invitations.open_codes(tx, planned.agent_id))
            invitation_id = invitations.insert_invitation(
                tx,
                signal_id=signal_id,
                agent_id=planned.agent_id,
                channel=planned.channel,
                code=code,
                status="queued",
                at=at,
            )
            outbox.enqueue(tx, kind="invite", ref_id=invitation_id, payload={"invitation_id": invitation_id}, at=at)
            recent[planned.agent_id] = recent.get(planned.agent_id, 0) + 1
        skipped = _shown_skips(decision)
        if skipped:
            invitations.insert_skipped(tx, signal_id=signal_id, agent_ids=skipped, at=at)
        if self._forwards(signal):
            outbox.enqueue(tx, kind="forward", ref_id=signal_id, payload={"event_id": signal.event_id}, at=at)


def _shown_skips(decision: Decision) -> list[str]:
    """Agents of the audience passed over, shown on the loop; not those outside every grant."""
    return [agent_id for agent_id, why in decision.skipped if why != "outside_grant"]


def _replay(signal: Signal, existing: tuple[int, str, str], digest: str) -> IntakeResult | RelayError:
    _, status, stored_digest = existing
    if stored_digest != digest:
        return EventIdConflictError()
    return IntakeResult(signal.source, signal.event_id, status, duplicate=True)


def _signal_values(signal: Signal, item: _Item, decision: Decision, at: int) -> SignalValues:
    return SignalValues(
        signal.source,
        signal.event_id,
        signal.type,
        signal.subject,
        decision.status,
        item.body,
        item.digest,
        decision.reason,
        decision.action_origin,
        int(decision.origin_uncertain),
        decision.policy_gate_result,
        dumps_list(decision.gate_failures),
        at,
        at,
    )


def _audit_row(signal: Signal, decision: Decision, at: int) -> AuditValues:
    detail = _decision_detail(decision)
    return AuditValues(
        at,
        "decision",
        signal.source,
        signal.event_id,
        None,
        decision.action_origin,
        decision.policy_gate_result,
        decision.reason,
        dumps_list(decision.gate_failures),
        dumps(detail) if detail else "{}",
    )


def _decision_detail(decision: Decision) -> dict[str, Any] | None:
    """What the audit row adds to the signal row: who was invited or skipped, and why."""
    if not (decision.invitations or decision.skipped or decision.grant_id):
        return None
    return {
        "grant": decision.grant_id,
        "invited": [[p.agent_id, p.channel] for p in decision.invitations],
        "skipped": [list(s) for s in decision.skipped],
    }
