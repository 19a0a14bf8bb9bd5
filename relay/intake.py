"""Intake: a verified, parsed signal becomes a stored loop with its decision.

The signal, the routing decision, its audit row and every queued invitation are
committed in one writer transaction, so a 202 means all of it is on disk. Intake
items are handed to the writer as a batch (`Writer.run_batched`): the group's
directory check, id and nonce look-ups happen once, the group is decided here and its rows
go in with `executemany` on ids reserved up front (`relay.signal_rows`, no statement per
row), reply codes are checked for the whole batch with point look-ups, and the throttle
counts every invitation decided before, in this batch too. The
look-ups run inside the write transaction; on SQLite nobody else can write between
them and the inserts. On PostgreSQL replicas write at once, and what must hold across them
holds without a global lock: the throttle's count of an agent is read under that agent's
advisory lock (`inbox.invitations.lock_agents`; the group first finds which agents routing
will count, then locks them in one sorted step), and one signal per event id and one use
per nonce come from the unique constraints: an insert that collides with another
replica's sends the group down the writer's slow path, where each item is redone alone and
its look-up finds the other row.

One loop per moment (CONTRACT section 10, `RELAY_COALESCE`): a signal that would invite while
a loop about the same subject is open (found by `signals.open_loop`, one index look-up, or an
earlier signal of the same group) is stored `joined` to that loop, nobody new is invited, and
the open loop's editable messages (Slack) are queued an update that shows it. On PostgreSQL
the look-up runs under the subject's advisory lock (`signals.lock_subjects`, taken before any
agent's), so two replicas never both open a loop about one subject.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from inbox import directory, invitations, signals
from inbox.tx import Tx
from inbox.writer import Writer
from relay import audit
from relay.errors import EventIdConflictError, NonceReusedError, RelayError
from relay.model import Agent, Decision, Grant, RoutingSettings, Signal
from relay.router import coalescing_key, consent_groups, decide, joined
from relay.signal_rows import GroupRows, OpenLoop, WithWork, audit_row, shown_skips, signal_values, store_group

log = logging.getLogger("care_relay.intake")
HOUR_MS = 3_600_000


@dataclass(frozen=True)
class IntakeResult:
    source: str
    event_id: str
    status: str
    duplicate: bool
    decision: Decision | None = None
    #: the stored signal's id, when it has work rows (invitations, skipped agents shown, a forward, a join)
    signal_id: int | None = None
    #: status `joined`: the event id of the open loop it joined
    joined_to: str | None = None
    #: `pending_consent` M3: the audience's groups that name a directory group (its consent page asks)
    consent_groups: tuple[str, ...] = ()
    #: a new signal: when it was received (Unix milliseconds, the relay's clock)
    received_at: int | None = None


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
        #: every group some agent of the directory is in
        self.groups: set[str] = set()

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
            self.groups = {g for a in self.agents for g in a.groups}
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
        coalesce: bool = False,
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
        #: one loop per moment (RELAY_COALESCE)
        self._coalesce = coalesce
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
                    **({"joined_to": result.joined_to} if result.joined_to else {}),
                }
            )
            if d.invitations or d.status == "joined" or (self._forward and signal.type == "care.escalation_detected"):
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
        group = GroupRows()
        #: where in `answers` each of `group.work` answers, and its answer before it has an id
        waiting: list[tuple[int, IntakeResult]] = []
        #: subject key → the open loop about it (None: none), looked up once per group
        opened: dict[str, OpenLoop | None] = {}
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
            subject_key = coalescing_key(signal)
            decision, target = self._coalesced(tx, opened, signal, decision, subject_key, len(group.work))
            row = signal_values(signal, item.body, item.digest, decision, at, subject_key)
            asks = consent_groups(signal, self._directory.groups) if decision.status == "pending_consent" else ()
            result = IntakeResult(
                signal.source, signal.event_id, decision.status, duplicate=False, decision=decision,
                joined_to=None if target is None else target.event_id, consent_groups=asks, received_at=at,
            )  # fmt: skip
            forward = self._forwards(signal)
            if decision.invitations or shown_skips(decision) or forward or target is not None:
                group.work.append(WithWork(signal, row, decision, forward, target))
                waiting.append((len(answers), result))
                for planned in decision.invitations:
                    recent.add(planned.agent_id)
            else:
                group.plain.append(row)
            if signal.nonce is not None:
                group.nonces.append((signal.source, signal.nonce, signal.event_id, at))
            known[key] = (0, decision.status, item.digest)
            if signal.nonce is not None:
                used[(signal.source, signal.nonce)] = signal.event_id
            group.audits.append(audit_row(signal, decision, at, None if target is None else target.event_id))
            answers.append(result)
        for (answer, result), signal_id in zip(waiting, store_group(tx, group, at), strict=True):
            answers[answer] = replace(result, signal_id=signal_id)
        return answers

    def _coalesced(
        self, tx: Tx, opened: dict[str, OpenLoop | None], signal: Signal, decision: Decision, key: str, index: int
    ) -> tuple[Decision, OpenLoop | None]:
        """The decision, `joined` when it would invite while a loop about its subject is open, and
        that loop. `opened` keeps the group's look-ups; `index` is where the signal goes in the work."""
        if not self._coalesce or decision.status != "invited":
            return decision, None
        if key not in opened:
            found = signals.open_loop(tx, key)
            opened[key] = None if found is None else OpenLoop(found[1], signal_id=found[0])
        target = opened[key]
        if target is None:  # this signal opens the loop that later ones of the group join
            opened[key] = OpenLoop(signal.event_id, work=index)
            return decision, None
        return joined(decision), target

    def _lock_counted(self, tx: Tx, items: list[_Item], known: Mapping[tuple[str, str], object], now: datetime) -> None:
        """Lock every agent routing will count for the group's new signals, before any count is read.

        Which agents routing asks about does not depend on their counts, so a routing pass
        that answers 0 for everyone finds them all.
        """
        asked = _Asked()
        new = [item.signal for item in items if (item.signal.source, item.signal.event_id) not in known]
        for signal in new:
            decide(signal, self._directory.grants, self._directory.agents, now=now,
                   settings=self._routing, recent_invites=asked)  # fmt: skip
        if self._coalesce:  # subjects first, then agents: every transaction takes them in this order
            signals.lock_subjects(tx, [coalescing_key(signal) for signal in new])
        invitations.lock_agents(tx, asked.ids)

    def _forwards(self, signal: Signal) -> bool:
        return self._forward and signal.type == "care.escalation_detected"


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


def _replay(signal: Signal, existing: tuple[int, str, str], digest: str) -> IntakeResult | RelayError:
    _, status, stored_digest = existing
    if stored_digest != digest:
        return EventIdConflictError()
    return IntakeResult(signal.source, signal.event_id, status, duplicate=True)
