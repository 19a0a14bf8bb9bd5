"""What a decided group of new signals is stored as: their rows, written one table at a time.

Intake decides a commit group and gathers its rows here (`GroupRows`); `store_group` writes
them, each table with one `executemany`. A signal with work rows (invitations queued or
skipped agents shown, a forward, a join) is stored on an id reserved up front, with its
invitations (through the one path invite now takes too), its outbox rows, and, when it
joined an open loop, the updates that show it on that loop's editable messages. A signal
without work is one plain row; every new signal has its audit row, and its nonce its row.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from inbox import invitations, outbox, signals
from inbox.audit import AuditValues, insert_audits
from inbox.invitations import Planned
from inbox.rows import dumps, dumps_list
from inbox.signals import SignalValues
from inbox.tx import Tx, reserve_ids
from relay import compose
from relay.model import Decision, Signal


@dataclass(frozen=True)
class OpenLoop:
    """The open loop a signal joins: stored (`signal_id`), or opened by an earlier signal of the group (`work`)."""

    event_id: str
    signal_id: int | None = None
    #: where the signal that opened it is in the group's `GroupRows.work`
    work: int | None = None


@dataclass(frozen=True)
class WithWork:
    """A new signal with work rows (invitations, shown skips, a forward), stored after its group is decided."""

    signal: Signal
    row: SignalValues
    decision: Decision
    #: a PR8 forward of its body is queued
    forward: bool
    #: the open loop this signal joined
    joins: OpenLoop | None = None


@dataclass
class GroupRows:
    """The rows of a commit group's new signals, gathered while the group is decided."""

    work: list[WithWork] = field(default_factory=list)
    plain: list[SignalValues] = field(default_factory=list)
    #: (source, nonce, event_id, seen_at)
    nonces: list[tuple[str, str, str, int]] = field(default_factory=list)
    audits: list[AuditValues] = field(default_factory=list)


def store_group(tx: Tx, group: GroupRows, at: int) -> list[int]:
    """Write the group's rows; the ids of its signals with work, in order."""
    # first: the reserved ids are free only until something else goes into these tables
    signal_ids = _store_work(tx, group.work, at)
    signals.insert_signals(tx, group.plain)
    signals.insert_nonces(tx, group.nonces)
    insert_audits(tx, group.audits)
    return signal_ids


def _store_work(tx: Tx, work: list[WithWork], at: int) -> list[int]:
    """The signals that have work rows, their invitations (queued and skipped, through the one
    path invite now takes too), the outbox rows, and the updates that show a joined signal on
    its open loop; each table with one `executemany` on ids reserved up front; the signals' ids."""
    if not work:
        return []
    signal_ids = reserve_ids(tx, "signal", len(work))
    rows = []
    for w in work:
        row = w.row
        if w.joins is not None:
            loop_id = w.joins.signal_id if w.joins.work is None else signal_ids[w.joins.work]
            row = row._replace(joined_to=loop_id)
        rows.append(row)
    signals.insert_signals_with_ids(tx, list(zip(signal_ids, rows, strict=True)))
    planned = [
        planned
        for signal_id, w in zip(signal_ids, work, strict=True)
        for planned in (
            *(Planned(signal_id, p.agent_id, p.channel) for p in w.decision.invitations),
            *(Planned(signal_id, agent_id, "") for agent_id in shown_skips(w.decision)),
        )
    ]
    outbox_rows = invitations.store_planned(tx, planned, at)
    for signal_id, w in zip(signal_ids, work, strict=True):
        if w.forward:
            outbox_rows.append(("forward", signal_id, {"event_id": w.signal.event_id}))
        if w.joins is not None and w.joins.signal_id is not None:  # one of this group has nothing delivered yet
            text = compose.joined_note(w.signal)
            outbox_rows += [
                ("update", invitation_id, {"invitation_id": invitation_id, "text": text})
                for invitation_id in invitations.to_update_on_join(tx, w.joins.signal_id)
            ]
    outbox.enqueue_many(tx, outbox_rows, at=at)
    return signal_ids


def shown_skips(decision: Decision) -> list[str]:
    """Agents of the audience passed over, shown on the loop; not those outside every grant."""
    return [agent_id for agent_id, why in decision.skipped if why != "outside_grant"]


def signal_values(
    signal: Signal, body: bytes, digest: str, decision: Decision, at: int, subject_key: str
) -> SignalValues:
    """The signal's row, as decided."""
    return SignalValues(
        signal.source,
        signal.event_id,
        signal.type,
        signal.subject,
        decision.status,
        body,
        digest,
        decision.reason,
        decision.action_origin,
        int(decision.origin_uncertain),
        decision.policy_gate_result,
        dumps_list(decision.gate_failures),
        at,
        at,
        subject_key,
    )


def audit_row(signal: Signal, decision: Decision, at: int, joined_to: str | None) -> AuditValues:
    """The decision's audit row (with the event id of the loop it joined, if it did)."""
    detail = _decision_detail(decision)
    if joined_to is not None:
        detail = {**(detail or {}), "joined_to": joined_to}
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
