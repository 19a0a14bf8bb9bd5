"""The loop's rules (DESIGN.md "State of a loop"), enforced in storage.

received → invited → acked → done. Only an agent holding an invitation for the signal
acks or closes it; each agent's ack is kept once; done happens once (a conditional
insert on the signal's primary key, so two simultaneous answers cannot both close the
loop); a done without a prior ack counts as that agent's ack too. Nothing here is
driven by time: these functions run only when a person answers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from inbox import store
from inbox.writer import Tx

RECORDED = "recorded"
ALREADY = "already"
NOT_INVITED = "not_invited"
ALREADY_DONE = "already_done"
NO_SUCH_LOOP = "no_such_loop"


@dataclass(frozen=True)
class LoopRef:
    signal_id: int
    source: str
    event_id: str
    status: str


@dataclass(frozen=True)
class Answer:
    outcome: str
    loop: LoopRef | None = None
    #: invitations of this loop to tell ((invitation id, channel, provider id)), when recorded.
    delivered: tuple[tuple[int, str, str], ...] = field(default=())
    #: True when a done also recorded the agent's ack.
    implied_ack: bool = False


def _loop(tx: Tx, signal_id: int) -> LoopRef | None:
    row = tx.execute("SELECT id, source, event_id, status FROM signal WHERE id = ?", (signal_id,)).fetchone()
    return None if row is None else LoopRef(int(row[0]), str(row[1]), str(row[2]), str(row[3]))


def _holds_invitation(tx: Tx, signal_id: int, agent_id: str) -> bool:
    """The agent holds a (not skipped) invitation of this loop and is still an active agent."""
    row = tx.execute(
        "SELECT 1 FROM invitation i JOIN agent a ON a.id = i.agent_id"
        " WHERE i.signal_id = ? AND i.agent_id = ? AND i.status <> 'skipped' AND a.active = 1 AND a.removed_at IS NULL",
        (signal_id, agent_id),
    ).fetchone()
    return row is not None


def _delivered(tx: Tx, signal_id: int) -> tuple[tuple[int, str, str], ...]:
    rows = tx.execute(
        "SELECT id, channel, provider_id FROM invitation WHERE signal_id = ? AND provider_id IS NOT NULL ORDER BY id",
        (signal_id,),
    ).fetchall()
    return tuple((int(r[0]), str(r[1]), str(r[2])) for r in rows)


def _insert_ack(tx: Tx, signal_id: int, agent_id: str, action: str, via: str, at: int) -> bool:
    cur = tx.execute(
        "INSERT INTO ack (signal_id, agent_id, action, via, at) VALUES (?, ?, ?, ?, ?)"
        " ON CONFLICT (signal_id, agent_id) DO NOTHING",
        (signal_id, agent_id, action, via, at),
    )
    return cur.rowcount == 1


def _audit(
    tx: Tx, loop: LoopRef, kind: str, agent_id: str, via: str, at: int, reason: str, result: str, **detail: Any
) -> None:
    store.insert_audit(
        tx,
        kind=kind,
        at=at,
        source=loop.source,
        event_id=loop.event_id,
        agent_id=agent_id,
        action_origin="user_directed",
        policy_gate_result=result,
        reason=reason,
        detail={"via": via, **detail},
    )


def record_ack(tx: Tx, *, signal_id: int, agent_id: str, action: str, via: str, at: int) -> Answer:
    """An agent's own "I'm here". Refusals leave only an audit row."""
    loop = _loop(tx, signal_id)
    if loop is None:
        return Answer(NO_SUCH_LOOP)
    if not _holds_invitation(tx, signal_id, agent_id):
        _audit(tx, loop, "refusal", agent_id, via, at, "ack by someone not invited to this loop", "blocked")
        return Answer(NOT_INVITED, loop)
    if loop.status == "done":
        return Answer(ALREADY_DONE, loop)
    if not _insert_ack(tx, signal_id, agent_id, action, via, at):
        return Answer(ALREADY, loop)
    tx.execute(
        "UPDATE signal SET status = 'acked', updated_at = ? WHERE id = ? AND status = 'invited'", (at, signal_id)
    )
    _audit(tx, loop, "ack", agent_id, via, at, "an invited agent answered", "allowed", action=action)
    return Answer(RECORDED, _loop(tx, signal_id), _delivered(tx, signal_id))


def record_done(tx: Tx, *, signal_id: int, agent_id: str, outcome: str, note: str, via: str, at: int) -> Answer:
    """A person closes the loop, once."""
    loop = _loop(tx, signal_id)
    if loop is None:
        return Answer(NO_SUCH_LOOP)
    if not _holds_invitation(tx, signal_id, agent_id):
        _audit(tx, loop, "refusal", agent_id, via, at, "done by someone not invited to this loop", "blocked")
        return Answer(NOT_INVITED, loop)
    cur = tx.execute(
        "INSERT INTO done (signal_id, agent_id, outcome, note, via, at) VALUES (?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (signal_id) DO NOTHING",
        (signal_id, agent_id, outcome, note, via, at),
    )
    if cur.rowcount != 1:
        return Answer(ALREADY_DONE, loop)
    implied = _insert_ack(tx, signal_id, agent_id, outcome, via, at)
    tx.execute("UPDATE signal SET status = 'done', updated_at = ? WHERE id = ?", (at, signal_id))
    _audit(
        tx, loop, "done", agent_id, via, at, "a person closed the loop", "allowed", outcome=outcome, implied_ack=implied
    )
    return Answer(RECORDED, _loop(tx, signal_id), _delivered(tx, signal_id), implied_ack=implied)


def refuse(tx: Tx, *, signal_id: int | None, agent_id: str | None, via: str, at: int, reason: str) -> None:
    """Record an answer that could not be taken (a stranger, an unknown code): an audit row only."""
    loop = _loop(tx, signal_id) if signal_id is not None else None
    store.insert_audit(
        tx,
        kind="refusal",
        at=at,
        source=loop.source if loop else None,
        event_id=loop.event_id if loop else None,
        agent_id=agent_id,
        action_origin="user_directed",
        policy_gate_result="blocked",
        reason=reason,
        detail={"via": via},
    )
