"""Outbox rows as an operator sees them: the listing of work not yet done, and the retry.

The listing names each row's loop (source and event id), and for invitations and message
updates the agent and channel, through the row's `ref_id` (the invitation for those, the
signal for callbacks and forwards); a join code (`verify`) names its agent and channel. It never returns a payload: callbacks carry notes a
person wrote. The retry is one conditional statement, so two people retrying the same row
at once start it once.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from inbox.audit import insert_audit
from inbox.rows import marks
from inbox.tx import Tx

#: kinds whose ref_id is an invitation (the others' is a signal)
_OF_INVITATIONS = "('invite', 'directed_invite', 'update')"


@dataclass(frozen=True)
class OutboxLine:
    """One outbox row and what it is about; instants are Unix milliseconds."""

    id: int
    kind: str
    status: str
    attempts: int
    next_attempt_at: int
    last_error: str | None
    event_id: str | None
    source: str | None
    agent: str | None
    channel: str | None
    created_at: int
    updated_at: int


_SELECT = (
    "SELECT o.id, o.kind, o.status, o.attempts, o.next_attempt_at, o.last_error, s.event_id, s.source,"
    " i.agent_id, i.channel, o.created_at, o.updated_at, CASE WHEN o.kind IN ('callback', 'verify') THEN o.payload END"
    f" FROM outbox o LEFT JOIN invitation i ON o.kind IN {_OF_INVITATIONS} AND i.id = o.ref_id"
    f" LEFT JOIN signal s ON s.id = CASE WHEN o.kind IN {_OF_INVITATIONS} THEN i.signal_id ELSE o.ref_id END"
)


def outbox_page(
    tx: Tx, *, statuses: Sequence[str], kinds: Sequence[str], before_id: int | None = None, limit: int = 50
) -> list[OutboxLine]:
    """Rows of these statuses and kinds, newest first, older than `before_id` when given."""
    if not statuses or not kinds or limit <= 0:
        return []
    where = f"o.status IN ({marks(len(statuses))}) AND o.kind IN ({marks(len(kinds))})"
    params: list[object] = [*statuses, *kinds]
    if before_id is not None:
        where += " AND o.id < ?"
        params.append(before_id)
    rows = tx.execute(f"{_SELECT} WHERE {where} ORDER BY o.id DESC LIMIT ?", (*params, limit)).fetchall()
    return [_line(row) for row in rows]


def outbox_line(tx: Tx, work_id: int) -> OutboxLine | None:
    row = tx.execute(f"{_SELECT} WHERE o.id = ?", (work_id,)).fetchone()
    return None if row is None else _line(row)


def _line(row: Sequence[object]) -> OutboxLine:
    (id_, kind, status, attempts, due, error, event_id, source, agent, channel, created, updated, payload) = row
    if kind == "verify":  # a join code: the agent and the channel whose address is asked
        agent, channel = _asked(payload)
    return OutboxLine(
        id=int(str(id_)),
        kind=str(kind),
        status=str(status),
        attempts=int(str(attempts)),
        next_attempt_at=int(str(due)),
        last_error=None if error is None else str(error),
        event_id=None if event_id is None else str(event_id),
        source=None if source is None else str(source),
        agent=str(agent) if agent is not None else _answered_by(payload),
        channel=str(channel) if channel else None,
        created_at=int(str(created)),
        updated_at=int(str(updated)),
    )


def _asked(payload: object) -> tuple[str | None, str | None]:
    """A join code's agent and channel; (None, None) for a row that does not read."""
    try:
        asked = json.loads(str(payload))
        agent, channel = asked["agent_id"], asked["channel"]
    except (ValueError, TypeError, KeyError, RecursionError):
        return None, None
    return (agent if isinstance(agent, str) else None), (channel if isinstance(channel, str) else None)


def _answered_by(payload: object) -> str | None:
    """A callback's agent: who answered (`body.by.id`); None for anything else or a row that does not read."""
    if not isinstance(payload, str):
        return None
    try:
        by = json.loads(payload)["body"]["by"]["id"]
    except (ValueError, TypeError, KeyError, RecursionError):
        return None
    return by if isinstance(by, str) else None


def retry_failed(tx: Tx, work_id: int, *, by: str, now: int) -> tuple[OutboxLine | None, bool]:
    """Make a failed row due now with a fresh attempt budget, and audit it (`outbox_retry`).

    Returns the row as it stands and whether it was retried (False: not failed, or None: no such row).
    A retried invitation goes back to `queued`; its send-time checks run again when it is claimed.
    """
    retried = tx.execute(
        "UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_at = ?, lease_until = NULL, updated_at = ?"
        " WHERE id = ? AND status = 'failed' RETURNING kind, ref_id",
        (now, now, work_id),
    ).fetchone()
    if retried is not None and retried[0] in ("invite", "directed_invite") and retried[1] is not None:
        tx.execute(
            "UPDATE invitation SET status = 'queued', error = NULL, updated_at = ? WHERE id = ?", (now, retried[1])
        )
    line = outbox_line(tx, work_id)
    if retried is not None and line is not None:
        insert_audit(
            tx,
            kind="outbox_retry",
            at=now,
            source=line.source,
            event_id=line.event_id,
            agent_id=line.agent,
            action_origin="user_directed",
            policy_gate_result="allowed",
            reason="a person asked for failed work to be tried again",
            detail={"by": by, "outbox": work_id, "what": line.kind, "channel": line.channel},
        )
    return line, retried is not None


def failed_ids(tx: Tx, *, kinds: Sequence[str]) -> list[int]:
    """The failed rows of these kinds, oldest first."""
    if not kinds:
        return []
    rows = tx.execute(
        f"SELECT id FROM outbox WHERE status = 'failed' AND kind IN ({marks(len(kinds))}) ORDER BY id", tuple(kinds)
    ).fetchall()
    return [int(r[0]) for r in rows]


def outbox_counts(tx: Tx, *, statuses: Sequence[str]) -> list[tuple[str, str, int, int | None]]:
    """(kind, status, rows, earliest next_attempt_at) for rows of these statuses: one grouped read
    on `ix_outbox_due` (status leads it), which never reaches the sent and skipped history."""
    if not statuses:
        return []
    rows = tx.execute(
        "SELECT kind, status, COUNT(*), MIN(next_attempt_at) FROM outbox"
        f" WHERE status IN ({marks(len(statuses))}) GROUP BY kind, status",
        tuple(statuses),
    ).fetchall()
    return [(str(k), str(s), int(n), None if due is None else int(due)) for k, s, n, due in rows]


def outbox_of_signal(tx: Tx, signal_id: int) -> list[OutboxLine]:
    """Every outbox row of one loop, sent ones included, oldest first: its invitations and message
    updates (by the loop's invitations) and its callbacks and forward (by the signal); on `ix_outbox_ref_id`."""
    invitations = [
        int(r[0]) for r in tx.execute("SELECT id FROM invitation WHERE signal_id = ?", (signal_id,)).fetchall()
    ]
    where = "(o.kind IN ('callback', 'forward') AND o.ref_id = ?)"
    params: list[object] = [signal_id]
    if invitations:
        where += f" OR (o.kind IN {_OF_INVITATIONS} AND o.ref_id IN ({marks(len(invitations))}))"
        params += invitations
    rows = tx.execute(f"{_SELECT} WHERE {where} ORDER BY o.id", params).fetchall()
    return [_line(row) for row in rows]
