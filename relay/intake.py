"""Intake: a verified, parsed signal becomes a stored loop with its decision.

The signal, the routing decision, its audit row and every queued invitation are
committed in one writer transaction, so a 202 means all of it is on disk. Intake
items are handed to the writer as a batch (`Writer.run_batched`): the group's
directory check, id and nonce look-ups happen once, rows go in with `executemany` on ids
reserved up front (no statement per row), reply codes are checked for the whole batch with
point look-ups, and the throttle counts every invitation decided before, in this batch too. The
look-ups run inside the write transaction; on SQLite nobody else can write between
them and the inserts. On PostgreSQL replicas write at once, and what must hold across them
holds without a global lock: the throttle's count of an agent is read under that agent's
advisory lock (`inbox.invitations.lock_agents`; the group first finds which agents routing
will count, then locks them in one sorted step), and one signal per event id and one use
per nonce come from the unique constraints: an insert that collides with another
replica's sends the group down the writer's slow path, where each item is redone alone and
its look-up finds the other row.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from inbox import directory, invitations, outbox, signals
from inbox.audit import AuditValues, insert_audits
from inbox.invitations import InvitationValues, ReplyCodeValues
from inbox.rows import dumps, dumps_list
from inbox.signals import SignalValues
from inbox.tx import Tx, reserve_ids
from inbox.writer import Writer
from relay import audit
from relay.errors import EventIdConflictError, NonceReusedError, RelayError
from relay.model import Agent, Decision, Grant, RoutingSettings, Signal
from relay.router import decide

log = logging.getLogger("care_relay.intake")
HOUR_MS = 3_600_000


@dataclass(frozen=True)
class IntakeResult:
    source: str
    event_id: str
    status: str
    duplicate: bool
    decision: Decision | None = None
    #: the stored signal's id, when it has work rows (invitations, skipped agents shown, a forward)
    signal_id: int | None = None


@dataclass(frozen=True)
class _Work:
    """A new signal with work rows (invitations, shown skips, a forward), stored after its group is decided."""

    #: where its answer is in the batch's answers
    answer: int
    signal: Signal
    row: SignalValues
    decision: Decision
    result: IntakeResult


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
        on_invited: Callable[[int, Signal], None] = lambda _signal_id, _signal: None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        forward_escalations: bool = False,
    ) -> None:
        self._writer = writer
        self._routing = routing
        self._on_queued = on_queued
        #: after commit, each new signal with work rows (its id and the parsed signal), so the
        #: read side can keep the parsed signal instead of parsing the stored bytes again
        self._on_invited = on_invited
        self._clock = clock
        #: PR8 forwarding: an autonomous action, so the caller folds in the kill switch and shadow mode.
        self._forward = forward_escalations
        self._directory = DirectoryCache()

    async def receive(self, signal: Signal, body: bytes) -> IntakeResult:
        """Store the signal with its decision; duplicates answer with the current status."""
        item = _Item(signal, body, hashlib.sha256(body).hexdigest())
        result: IntakeResult = await self._writer.run_batched(self._apply, item)
        if result.signal_id is not None:
            try:
                self._on_invited(result.signal_id, signal)
            except Exception as exc:  # a cache the read side can rebuild: the 202 stands, it is committed
                log.warning("on_invited failed: %s", type(exc).__name__)
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
        self._directory.refresh(tx)
        agents = self._directory.agents
        recent = _HourlyCounts(tx, at - HOUR_MS, self._routing.agent_max_invites_per_hour)
        known: dict[tuple[str, str], tuple[int, str, str]] = {}
        used: dict[tuple[str, str], str] = {}
        for source in {i.signal.source for i in items}:
            mine = [i.signal for i in items if i.signal.source == source]
            known.update(
                {(source, e): v for e, v in signals.known_signals(tx, source, [s.event_id for s in mine]).items()}
            )
            nonces = [s.nonce for s in mine if s.nonce is not None]
            used.update({(source, n): e for n, e in signals.known_nonces(tx, source, nonces).items()})

        if tx.dialect == "postgresql":
            self._lock_counted(tx, items, known, now)

        answers: list[IntakeResult | RelayError] = []
        work: list[_Work] = []
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
            result = IntakeResult(signal.source, signal.event_id, decision.status, duplicate=False, decision=decision)
            if decision.invitations or _shown_skips(decision) or self._forwards(signal):
                work.append(_Work(len(answers), signal, row, decision, result))
                for planned in decision.invitations:
                    recent.add(planned.agent_id)
            else:
                plain_rows.append(row)
            if signal.nonce is not None:
                nonce_rows.append((signal.source, signal.nonce, signal.event_id, at))
            known[key] = (0, decision.status, item.digest)
            if signal.nonce is not None:
                used[(signal.source, signal.nonce)] = signal.event_id
            audit_rows.append(_audit_row(signal, decision, at))
            answers.append(result)
        # first: the reserved ids are free only until something else goes into these tables
        for stored, signal_id in zip(work, self._store_work(tx, work, at), strict=True):
            answers[stored.answer] = replace(stored.result, signal_id=signal_id)
        signals.insert_signals(tx, plain_rows)
        signals.insert_nonces(tx, nonce_rows)
        insert_audits(tx, audit_rows)
        return answers

    def _lock_counted(self, tx: Tx, items: list[_Item], known: Mapping[tuple[str, str], object], now: datetime) -> None:
        """Lock every agent routing will count for the group's new signals, before any count is read.

        Which agents routing asks about does not depend on their counts, so a routing pass
        that answers 0 for everyone finds them all.
        """
        asked = _Asked()
        for item in items:
            if (item.signal.source, item.signal.event_id) not in known:
                decide(item.signal, self._directory.grants, self._directory.agents, now=now,
                       settings=self._routing, recent_invites=asked)  # fmt: skip
        invitations.lock_agents(tx, asked.ids)

    def _forwards(self, signal: Signal) -> bool:
        return self._forward and signal.type == "care.escalation_detected"

    def _store_work(self, tx: Tx, work: list[_Work], at: int) -> list[int]:
        """The signals that have work rows, their invitations (queued and skipped), the queued
        ones' reply codes and the outbox rows, each table with one `executemany` on ids
        reserved up front (no statement per row); the signals' ids."""
        if not work:
            return []
        signal_ids = reserve_ids(tx, "signal", len(work))
        signals.insert_signals_with_ids(tx, list(zip(signal_ids, (w.row for w in work), strict=True)))
        planned = [p for w in work for p in w.decision.invitations]
        codes = iter(invitations.pick_codes(tx, [p.agent_id for p in planned]))
        shown = [_shown_skips(w.decision) for w in work]
        invitation_ids = iter(reserve_ids(tx, "invitation", len(planned) + sum(map(len, shown))))
        invitation_rows: list[InvitationValues] = []
        code_rows: list[ReplyCodeValues] = []
        outbox_rows: list[tuple[str, int | None, dict[str, Any]]] = []
        for signal_id, w, skipped in zip(signal_ids, work, shown, strict=True):
            for p in w.decision.invitations:
                invitation_id, code = next(invitation_ids), next(codes)
                invitation_rows.append(
                    InvitationValues(invitation_id, signal_id, p.agent_id, p.channel, code, "queued", at, at)
                )
                code_rows.append(ReplyCodeValues(p.agent_id, code, signal_id, invitation_id))
                outbox_rows.append(("invite", invitation_id, {"invitation_id": invitation_id}))
            for agent_id in skipped:
                invitation_rows.append(
                    InvitationValues(next(invitation_ids), signal_id, agent_id, "", None, "skipped", at, at)
                )
            if self._forwards(w.signal):
                outbox_rows.append(("forward", signal_id, {"event_id": w.signal.event_id}))
        invitations.insert_invitations(tx, invitation_rows)
        invitations.insert_reply_codes(tx, code_rows)
        outbox.enqueue_many(tx, outbox_rows, at=at)
        return signal_ids


class _HourlyCounts(Mapping[str, int]):
    """The throttle's count of each agent, read the first time routing asks about the agent in
    a group (routing asks only about agents in a grant's audience), then kept up to date with
    the group's own invitations."""

    def __init__(self, tx: Tx, since: int, limit: int) -> None:
        self._tx = tx
        self._since = since
        self._limit = limit
        self._counts: dict[str, int] = {}

    def __getitem__(self, agent_id: str) -> int:
        count = self._counts.get(agent_id)
        if count is None:
            found = invitations.recent_invites(self._tx, [agent_id], self._since, self._limit)
            count = self._counts[agent_id] = found.get(agent_id, 0)
        return count

    def __iter__(self) -> Iterator[str]:
        return iter(self._counts)

    def __len__(self) -> int:
        return len(self._counts)

    def add(self, agent_id: str) -> None:
        """One more invitation decided in this group."""
        self._counts[agent_id] = self[agent_id] + 1


class _Asked(Mapping[str, int]):
    """Counts of 0 that remember which agents routing asked about."""

    def __init__(self) -> None:
        self.ids: set[str] = set()

    def __getitem__(self, agent_id: str) -> int:
        self.ids.add(agent_id)
        return 0

    def __iter__(self) -> Iterator[str]:
        return iter(self.ids)

    def __len__(self) -> int:
        return len(self.ids)


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
