"""Outbox storage verbs: enqueue work, claim due work under a lease, and settle it.

A claimed row carries a lease, renewed while its send runs; a worker that dies mid-send
leaves the row `sending` with a lease that lapses, and the next claim takes it back. On
PostgreSQL the claim uses `FOR UPDATE SKIP LOCKED`, so two relay processes never take the
same row. A claim is named by (id, attempts): the claim itself counts the attempt, so a
later claim of the same row (after a lapse) is another name, and a renewal or release of
the earlier one touches nothing.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from inbox.rows import dumps, marks
from inbox.tx import Tx

#: kinds the relay sends on its own (stopped by the kill switch and shadow mode).
AUTONOMOUS_KINDS = ("invite", "forward")
#: an invitation a person asked for (invite now, CONTRACT section 10): `user_directed`, so neither
#: the kill switch nor shadow mode holds it back; the send-time checks still run
DIRECTED_INVITE = "directed_invite"
#: the kinds whose work is one invitation to send
INVITE_KINDS = ("invite", DIRECTED_INVITE)


@dataclass(frozen=True)
class Work:
    """A claimed row: `attempts` counts this attempt, and with `id` names the claim."""

    id: int
    kind: str
    ref_id: int | None
    payload: dict[str, Any]
    attempts: int


#: what names a claim: the row and its attempt number
Claim = Work


_INSERT = (
    "INSERT INTO outbox (kind, ref_id, payload, status, attempts, next_attempt_at, created_at, updated_at)"
    " VALUES (?, ?, ?, 'pending', 0, ?, ?, ?)"
)


def enqueue(tx: Tx, *, kind: str, payload: dict[str, Any], at: int, ref_id: int | None = None) -> int:
    """Add outbox work, due now; its id."""
    row = tx.execute(_INSERT + " RETURNING id", (kind, ref_id, dumps(payload), at, at, at)).fetchone()
    return int(row[0])


def enqueue_many(tx: Tx, work: Sequence[tuple[str, int | None, dict[str, Any]]], *, at: int) -> None:
    """Add (kind, ref_id, payload) work, all due now, in this order (intake's hot path)."""
    tx.executemany(_INSERT, [(kind, ref_id, dumps(payload), at, at, at) for kind, ref_id, payload in work])


#: message updates of one invitation go out in order: not while an earlier one is unsettled
_IN_ORDER = (
    " AND NOT (kind = 'update' AND EXISTS (SELECT 1 FROM outbox e WHERE e.kind = 'update'"
    " AND e.ref_id = outbox.ref_id AND e.id < outbox.id AND e.status IN ('pending', 'sending')))"
)


def claim(tx: Tx, *, now: int, lease_ms: int, limit: int, kinds: tuple[str, ...]) -> list[Work]:
    """Take up to `limit` due rows of these kinds: first those whose lease lapsed (a worker
    died mid-send), then pending ones; each in the order they came due.

    Each half is its own statement on `ix_outbox_due` (status, next_attempt_at): the
    `sending` rows are the few in flight, and due `pending` rows are read in index order
    up to the limit, so neither settled history nor a long backlog is read or sorted.
    """
    if not kinds or limit <= 0:
        return []
    lapsed = _take(tx, "status = 'sending' AND lease_until < ?", now=now, lease_ms=lease_ms, limit=limit, kinds=kinds)
    left = limit - len(lapsed)
    due = (
        _take(tx, "status = 'pending' AND next_attempt_at <= ?", now=now, lease_ms=lease_ms, limit=left, kinds=kinds)
        if left > 0
        else []
    )
    return sorted(lapsed + due, key=lambda w: w.id)


def _take(tx: Tx, which: str, *, now: int, lease_ms: int, limit: int, kinds: tuple[str, ...]) -> list[Work]:
    # in the index's own order (status, next_attempt_at, then id): nothing to sort, and no
    # planner is tempted to walk the settled rows in id order instead
    lock = " FOR UPDATE SKIP LOCKED" if tx.dialect == "postgresql" else ""
    rows = tx.execute(
        "UPDATE outbox SET status = 'sending', attempts = attempts + 1, lease_until = ?, updated_at = ?"
        f" WHERE id IN (SELECT id FROM outbox WHERE {which} AND kind IN ({marks(len(kinds))}){_IN_ORDER}"
        f" ORDER BY next_attempt_at, id LIMIT ?{lock})"
        " RETURNING id, kind, ref_id, payload, attempts",
        (now + lease_ms, now, now, *kinds, limit),
    ).fetchall()
    return [Work(int(r[0]), str(r[1]), r[2], json.loads(r[3]), int(r[4])) for r in rows]


def renew(tx: Tx, claims: Sequence[tuple[int, int]], *, until: int) -> None:
    """Extend the leases of these (id, attempts) claims, still being sent, to `until`."""
    tx.executemany(
        "UPDATE outbox SET lease_until = ? WHERE id = ? AND attempts = ? AND status = 'sending'",
        [(until, work_id, attempts) for work_id, attempts in claims],
    )


def release(tx: Tx, claims: Sequence[tuple[int, int]], *, now: int) -> None:
    """Give back (id, attempts) claims not sent (shutdown): pending, due now, the attempt not counted."""
    tx.executemany(
        "UPDATE outbox SET status = 'pending', lease_until = NULL, attempts = attempts - 1, next_attempt_at = ?,"
        " updated_at = ? WHERE id = ? AND attempts = ? AND status = 'sending'",
        [(now, now, work_id, attempts) for work_id, attempts in claims],
    )


def release_left(tx: Tx, *, now: int) -> int:
    """Every claim an earlier process left (SQLite has one process: none is live), pending and due now.

    The attempt stays counted: the process may have been killed after its provider answered.
    """
    cursor = tx.execute(
        "UPDATE outbox SET status = 'pending', lease_until = NULL, next_attempt_at = ?, updated_at = ?"
        " WHERE status = 'sending'",
        (now, now),
    )
    return max(0, int(cursor.rowcount))


# A settle names the claim it ends, (id, attempts): should this process have lost the row
# (its lease lapsed while it stalled, and another claim took it), the settle changes nothing
# and answers False, so only the holder of the current claim settles a row.
_CLAIM = " WHERE id = ? AND attempts = ? AND status = 'sending'"


def finish(tx: Tx, work: Claim, now: int, *, provider_id: str | None = None) -> bool:
    """Sent; `provider_id`: the message a join code went out as, for its status callback to find."""
    return _settled(tx, "status = 'sent', last_error = NULL, provider_id = ?", (provider_id,), work, now)


def reschedule(tx: Tx, work: Claim, *, at: int, error: str, now: int) -> bool:
    return _settled(tx, "status = 'pending', next_attempt_at = ?, last_error = ?", (at, error), work, now)


def skip(tx: Tx, work: Claim, *, reason: str, now: int) -> bool:
    """Settled without sending: a send-time check refused it for good."""
    return _settled(tx, "status = 'skipped', last_error = ?", (reason,), work, now)


def fail(tx: Tx, work: Claim, *, error: str, now: int) -> bool:
    return _settled(tx, "status = 'failed', last_error = ?", (error,), work, now)


def _settled(tx: Tx, changes: str, values: tuple[Any, ...], work: Claim, now: int) -> bool:
    cursor = tx.execute(
        f"UPDATE outbox SET {changes}, lease_until = NULL, updated_at = ?{_CLAIM}",
        (*values, now, work.id, work.attempts),
    )
    return cursor.rowcount == 1


def set_invitation(
    tx: Tx, invitation_id: int, *, status: str, now: int, provider_id: str | None = None, error: str | None = None
) -> None:
    tx.execute(
        "UPDATE invitation SET status = ?, provider_id = COALESCE(?, provider_id), error = ?, updated_at = ? WHERE id = ?",
        (status, provider_id, error, now, invitation_id),
    )


def next_due(tx: Tx) -> int | None:
    row = tx.execute("SELECT MIN(next_attempt_at) FROM outbox WHERE status = 'pending'").fetchone()
    return None if row is None or row[0] is None else int(row[0])


def rows(tx: Tx) -> list[dict[str, Any]]:
    """Every outbox row (tests and the CLI)."""
    out = tx.execute("SELECT id, kind, ref_id, status, attempts, last_error FROM outbox ORDER BY id").fetchall()
    return [dict(zip(("id", "kind", "ref_id", "status", "attempts", "last_error"), r, strict=True)) for r in out]
