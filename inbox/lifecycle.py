"""The loop's writes (DESIGN.md "State of a loop"): the facts an answer is judged on, and
the judged answer stored with conditional statements.

received → invited → acked → done; a "not now" (pass) is kept beside the loop and moves nothing. Who may answer is `relay.loop`'s to judge; what is
left to storage is the last word on races: each agent's ack is kept once (ON CONFLICT on
(signal, agent)), and done happens once (ON CONFLICT on the signal), so two simultaneous
dones cannot both close the loop. A done without a prior ack counts as that agent's ack
too. Nothing here is driven by time: these functions run only when a person answers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from inbox import audit, reply_codes
from inbox.tx import Tx
from relay.model import LoopFacts

RECORDED = "recorded"
ALREADY = "already"
ALREADY_DONE = "already_done"


@dataclass(frozen=True)
class Stored:
    """What a judged answer did: `outcome` is RECORDED, ALREADY or ALREADY_DONE."""

    outcome: str
    #: the loop's status after the answer.
    status: str
    #: invitations of this loop to tell (invitation ids), when recorded.
    delivered: tuple[int, ...] = ()
    #: True when a done also recorded the agent's ack.
    implied_ack: bool = False


def facts(tx: Tx, *, signal_id: int, agent_id: str | None, invitation_id: int | None) -> LoopFacts | None:
    """The loop, the answering agent and the invitation the answer names, read in its transaction."""
    loop = tx.execute("SELECT source, event_id, status, body IS NULL FROM signal WHERE id = ?", (signal_id,)).fetchone()
    if loop is None:
        return None
    agent = (
        tx.execute("SELECT display, active, removed_at FROM agent WHERE id = ?", (agent_id,)).fetchone()
        if agent_id is not None
        else None
    )
    holds = agent_id is not None and (
        tx.execute(
            "SELECT 1 FROM invitation WHERE signal_id = ? AND agent_id = ? AND status <> 'skipped'",
            (signal_id, agent_id),
        ).fetchone()
        is not None
    )
    named = (
        tx.execute(
            "SELECT agent_id FROM invitation WHERE id = ? AND signal_id = ?", (invitation_id, signal_id)
        ).fetchone()
        if invitation_id is not None
        else None
    )
    acked = agent_id is not None and (
        tx.execute("SELECT 1 FROM ack WHERE signal_id = ? AND agent_id = ?", (signal_id, agent_id)).fetchone()
        is not None
    )
    return LoopFacts(
        signal_id=signal_id,
        source=str(loop[0]),
        event_id=str(loop[1]),
        status=str(loop[2]),
        holds=holds,
        named_holder=None if named is None else str(named[0]),
        known=agent is not None,
        active=agent is not None and bool(agent[1]) and agent[2] is None,
        purged=bool(loop[3]),
        display=str(agent[0]) if agent is not None else (agent_id or ""),
        acked=acked,
    )


def _delivered(tx: Tx, signal_id: int) -> tuple[int, ...]:
    rows = tx.execute(
        "SELECT id FROM invitation WHERE signal_id = ? AND provider_id IS NOT NULL ORDER BY id", (signal_id,)
    ).fetchall()
    return tuple(int(r[0]) for r in rows)


def _status(tx: Tx, signal_id: int) -> str:
    return str(tx.execute("SELECT status FROM signal WHERE id = ?", (signal_id,)).fetchone()[0])


def _insert_ack(tx: Tx, signal_id: int, agent_id: str, action: str, via: str, at: int) -> bool:
    cur = tx.execute(
        "INSERT INTO ack (signal_id, agent_id, action, via, at) VALUES (?, ?, ?, ?, ?)"
        " ON CONFLICT (signal_id, agent_id) DO NOTHING",
        (signal_id, agent_id, action, via, at),
    )
    return cur.rowcount == 1


def _audit(tx: Tx, loop: LoopFacts, kind: str, agent_id: str | None, via: str, at: int, **detail: Any) -> None:
    allowed = kind != "refusal"
    audit.insert_audit(
        tx,
        kind=kind,
        at=at,
        source=loop.source,
        event_id=loop.event_id,
        agent_id=agent_id,
        action_origin="user_directed",
        policy_gate_result="allowed" if allowed else "blocked",
        reason=str(detail.pop("reason")),
        detail={"via": via, **detail},
    )


def store_ack(tx: Tx, loop: LoopFacts, *, agent_id: str, action: str, via: str, at: int) -> Stored:
    """Keep a judged ack (once per agent and loop); the loop moves invited → acked."""
    if not _insert_ack(tx, loop.signal_id, agent_id, action, via, at):
        return Stored(ALREADY, loop.status)
    tx.execute(
        "UPDATE signal SET status = 'acked', updated_at = ? WHERE id = ? AND status = 'invited'", (at, loop.signal_id)
    )
    _audit(tx, loop, "ack", agent_id, via, at, reason="an invited agent answered", action=action)
    return Stored(RECORDED, _status(tx, loop.signal_id), _delivered(tx, loop.signal_id))


def store_done(tx: Tx, loop: LoopFacts, *, agent_id: str, outcome: str, note: str, via: str, at: int) -> Stored:
    """Close the loop, once: a done that lost the race is ALREADY_DONE. Its reply codes are freed."""
    cur = tx.execute(
        "INSERT INTO done (signal_id, agent_id, outcome, note, via, at) VALUES (?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (signal_id) DO NOTHING",
        (loop.signal_id, agent_id, outcome, note, via, at),
    )
    if cur.rowcount != 1:
        return Stored(ALREADY_DONE, "done")
    implied = _insert_ack(tx, loop.signal_id, agent_id, outcome, via, at)
    tx.execute("UPDATE signal SET status = 'done', updated_at = ? WHERE id = ?", (at, loop.signal_id))
    reply_codes.release_codes(tx, loop.signal_id)
    _audit(tx, loop, "done", agent_id, via, at, reason="a person closed the loop", outcome=outcome, implied_ack=implied)
    return Stored(RECORDED, "done", _delivered(tx, loop.signal_id), implied_ack=implied)


def store_pass(tx: Tx, loop: LoopFacts, *, agent_id: str, via: str, at: int) -> Stored:
    """Keep a judged "not now" (once per agent and loop). Nothing else moves: no status, no message."""
    cur = tx.execute(
        "INSERT INTO loop_pass (signal_id, agent_id, via, at) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (signal_id, agent_id) DO NOTHING",
        (loop.signal_id, agent_id, via, at),
    )
    if cur.rowcount != 1:
        return Stored(ALREADY, loop.status)
    _audit(
        tx, loop, "pass", agent_id, via, at,
        reason="an invited agent said not now", user_instruction=f"{agent_id} said not now",
    )  # fmt: skip
    return Stored(RECORDED, loop.status)


def store_refusal(tx: Tx, loop: LoopFacts, *, agent_id: str | None, via: str, at: int, reason: str) -> None:
    """A judged refusal on a loop: an audit row only."""
    _audit(tx, loop, "refusal", agent_id, via, at, reason=reason)


def refuse(tx: Tx, *, signal_id: int | None, agent_id: str | None, via: str, at: int, reason: str) -> None:
    """Record an answer that could not be taken (a stranger, an unknown code): an audit row only."""
    loop = (
        tx.execute("SELECT source, event_id FROM signal WHERE id = ?", (signal_id,)).fetchone()
        if signal_id is not None
        else None
    )
    audit.insert_audit(
        tx,
        kind="refusal",
        at=at,
        source=str(loop[0]) if loop else None,
        event_id=str(loop[1]) if loop else None,
        agent_id=agent_id,
        action_origin="user_directed",
        policy_gate_result="blocked",
        reason=reason,
        detail={"via": via},
    )
