"""Signals: what senders posted, the nonces they used, their raw bodies and retention.

Writes are sync functions over the writer's `Tx` in plain SQL: intake's hot path inserts
whole groups with `executemany`, rows given as `SignalValues` named tuples.
Reads are sync functions too, run by the reader (`inbox.reader.Reader`) or inside a write
job; they return plain values (`StoredSignal`, dicts for pages) and never raise on an odd
stored value (a row written by hand reads its gate list as empty).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from inbox.rows import marks, strings
from inbox.tx import Tx


class SignalValues(NamedTuple):
    """A new signal row as intake inserts it: a tuple, for `executemany` on the hot path."""

    source: str
    event_id: str
    type: str
    subject: str
    status: str
    body: bytes
    body_sha256: str
    reason: str
    action_origin: str
    origin_uncertain: int
    policy_gate_result: str
    #: JSON text (`inbox.rows.dumps_list`)
    gate_failures: str
    received_at: int
    updated_at: int
    #: what the signal is about, hashed (`relay.router.coalescing_key`): the open loop is found by it
    subject_key: str | None = None
    #: status `joined`: the id of the open loop it joined
    joined_to: int | None = None


SIGNAL_COLUMNS = ", ".join(SignalValues._fields)
_INSERT = f"INSERT INTO signal ({SIGNAL_COLUMNS}) VALUES ({marks(len(SignalValues._fields))})"


@dataclass(frozen=True)
class StoredSignal:
    """A stored signal and its decision, without the sender's bytes."""

    id: int
    source: str
    event_id: str
    type: str
    subject: str
    status: str
    body_sha256: str
    reason: str
    action_origin: str
    origin_uncertain: bool
    policy_gate_result: str
    gate_failures: list[str]
    received_at: int
    updated_at: int
    #: status `joined`: the id of the open loop this signal joined
    joined_to: int | None = None


@dataclass(frozen=True)
class JoinedLine:
    """A signal that joined a loop, as the loop shows it."""

    id: int
    source: str
    event_id: str
    type: str
    received_at: int


# Writes (inside a writer job) ------------------------------------------------------


def known_signals(tx: Tx, source: str, event_ids: Sequence[str]) -> dict[str, tuple[int, str, str]]:
    """(id, status, body_sha256) of the stored signals among these ids of one source."""
    if not event_ids:
        return {}
    rows = tx.execute(
        f"SELECT event_id, id, status, body_sha256 FROM signal WHERE source = ? AND event_id IN ({marks(len(event_ids))})",
        (source, *event_ids),
    ).fetchall()
    return {str(r[0]): (int(r[1]), str(r[2]), str(r[3])) for r in rows}


def known_nonces(tx: Tx, source: str, nonces: Sequence[str]) -> dict[str, str]:
    """nonce → the event id that used it, among these nonces of one source."""
    if not nonces:
        return {}
    rows = tx.execute(
        f"SELECT nonce, event_id FROM seen_nonce WHERE source = ? AND nonce IN ({marks(len(nonces))})",
        (source, *nonces),
    )
    return {str(r[0]): str(r[1]) for r in rows.fetchall()}


#: the first key of the PostgreSQL advisory locks held on subjects ("subj" in ASCII)
SUBJECT_LOCK_CLASS = 0x7375626A


def subject_lock_keys(subject_keys: Iterable[str]) -> list[int]:
    """The second key of each subject's advisory lock, in the one order every transaction takes them."""
    return sorted({int.from_bytes(bytes.fromhex(k[:8]), "big", signed=True) for k in subject_keys if len(k) >= 8})


def lock_subjects(tx: Tx, subject_keys: Iterable[str]) -> None:
    """Hold these subjects' coalescing locks until the transaction ends (PostgreSQL; SQLite's write
    lock already makes one writer at a time).

    Taken before the open loop about a subject is looked for, so two replicas never both find
    none and both open a loop about one subject; taken in one statement in ascending key order,
    and before any agent's lock (`inbox.invitations.lock_agents`), so no two transactions wait on
    each other in a circle. Keys are a hash's first 32 bits: two subjects may share a lock,
    which only makes one wait for the other.
    """
    keys = subject_lock_keys(subject_keys)
    if tx.dialect != "postgresql" or not keys:
        return
    tx.execute(
        "SELECT pg_advisory_xact_lock(CAST(? AS integer), k) FROM unnest(CAST(? AS integer[])) AS k",
        (SUBJECT_LOCK_CLASS, keys),
    ).fetchall()


def open_loop(tx: Tx, subject_key: str) -> tuple[int, str] | None:
    """(id, event id) of the oldest open loop (invited or acked) about this subject, if any.

    One look-up on `ix_signal_open_subject`, which holds open loops only: the statuses are
    literals, as the index's own condition, so that SQLite uses it.
    """
    row = tx.execute(
        "SELECT id, event_id FROM signal WHERE subject_key = ? AND status IN ('invited', 'acked') ORDER BY id LIMIT 1",
        (subject_key,),
    ).fetchone()
    return None if row is None else (int(row[0]), str(row[1]))


def insert_signals(tx: Tx, rows: Sequence[SignalValues]) -> None:
    """Many new signals at once; the single writer checked they are new."""
    tx.executemany(_INSERT, rows)


_INSERT_WITH_ID = f"INSERT INTO signal (id, {SIGNAL_COLUMNS}) VALUES ({marks(len(SignalValues._fields) + 1)})"


def insert_signals_with_ids(tx: Tx, rows: Sequence[tuple[int, SignalValues]]) -> None:
    """Many new signals whose ids were reserved (`inbox.tx.reserve_ids`) for their work rows."""
    tx.executemany(_INSERT_WITH_ID, [(signal_id, *row) for signal_id, row in rows])


def insert_nonces(tx: Tx, rows: Sequence[Sequence[Any]]) -> None:
    """Nonces seen, as (source, nonce, event_id, seen_at) rows."""
    tx.executemany("INSERT INTO seen_nonce (source, nonce, event_id, seen_at) VALUES (?, ?, ?, ?)", rows)


def purge_bodies(tx: Tx, older_than: int) -> int:
    """Drop raw bodies and inbound-message records past retention; the loop record stays."""
    purged = tx.execute(
        "UPDATE signal SET body = NULL WHERE received_at < ? AND body IS NOT NULL", (older_than,)
    ).rowcount
    tx.execute("DELETE FROM inbound_message WHERE at < ?", (older_than,))
    tx.execute("DELETE FROM verification_attempt WHERE at < ?", (older_than,))
    return purged


# Reads (a reader's or a writer's job) -------------------------------------------------

_STORED_COLUMNS = (
    "id, source, event_id, type, subject, status, body_sha256, reason, action_origin, origin_uncertain,"
    " policy_gate_result, gate_failures, received_at, updated_at, joined_to"
)


def _stored(row: Sequence[Any]) -> StoredSignal:
    (id_, source, event_id, type_, subject, status, sha, reason, origin, uncertain, gate, failures, at, updated,
     joined_to) = row  # fmt: skip
    return StoredSignal(
        int(id_), source, event_id, type_, subject, status, sha, reason, origin, bool(uncertain), gate,
        list(strings(failures)), int(at), int(updated), joined_to if isinstance(joined_to, int) else None,
    )  # fmt: skip


def find_signals(tx: Tx, event_id: str, source: str | None = None) -> list[StoredSignal]:
    """The signals stored under this event id (of one source, when given), oldest first."""
    sql, params = (
        ("WHERE event_id = ? AND source = ?", [event_id, source]) if source else ("WHERE event_id = ?", [event_id])
    )
    rows = tx.execute(f"SELECT {_STORED_COLUMNS} FROM signal {sql} ORDER BY id", params).fetchall()
    return [_stored(r) for r in rows]


def signal_by_id(tx: Tx, signal_id: int) -> StoredSignal | None:
    row = tx.execute(f"SELECT {_STORED_COLUMNS} FROM signal WHERE id = ?", (signal_id,)).fetchone()
    return None if row is None else _stored(row)


def joined_to_loop(tx: Tx, signal_id: int) -> list[JoinedLine]:
    """The signals that joined this loop, oldest first (on `ix_signal_joined_to`)."""
    rows = tx.execute(
        "SELECT id, source, event_id, type, received_at FROM signal WHERE joined_to = ? ORDER BY id", (signal_id,)
    ).fetchall()
    return [JoinedLine(int(r[0]), str(r[1]), str(r[2]), str(r[3]), int(r[4])) for r in rows]


def event_id_of(tx: Tx, signal_id: int) -> str | None:
    """The event id of a stored signal."""
    row = tx.execute("SELECT event_id FROM signal WHERE id = ?", (signal_id,)).fetchone()
    return None if row is None else str(row[0])


def subjects(tx: Tx, signal_ids: Sequence[int]) -> dict[int, str]:
    """The subject of each of these signals (the grants' key)."""
    if not signal_ids:
        return {}
    rows = tx.execute(f"SELECT id, subject FROM signal WHERE id IN ({marks(len(signal_ids))})", signal_ids).fetchall()
    return {int(r[0]): str(r[1]) for r in rows}


def raw_body(tx: Tx, signal_id: int) -> bytes | None:
    """The bytes a sender posted (None once retention purged them)."""
    row = tx.execute("SELECT body FROM signal WHERE id = ?", (signal_id,)).fetchone()
    return None if row is None or row[0] is None else bytes(row[0])


def inbox_page(
    tx: Tx, *, statuses: Sequence[str] = (), before_id: int | None = None, limit: int = 50
) -> list[dict[str, Any]]:
    """Loops newest first, with their invitations, ack count and answers (who, which response)."""
    where: list[str] = []
    params: list[Any] = []
    if statuses:
        where.append(f"status IN ({marks(len(statuses))})")
        params += statuses
    if before_id is not None:
        where.append("id < ?")
        params.append(before_id)
    clause = f"WHERE {' AND '.join(where)} " if where else ""
    signals = tx.execute(
        f"SELECT id, event_id, source, type, status, received_at, reason FROM signal {clause}ORDER BY id DESC LIMIT ?",
        (*params, limit),
    ).fetchall()
    ids = [int(s[0]) for s in signals]
    invitations: dict[int, list[dict[str, Any]]] = {i: [] for i in ids}
    acks: dict[int, int] = {}
    answers: dict[int, list[dict[str, str]]] = {i: [] for i in ids}
    if ids:
        for signal_id, agent, channel, status, error in tx.execute(
            f"SELECT signal_id, agent_id, channel, status, error FROM invitation WHERE signal_id IN ({marks(len(ids))})"
            " ORDER BY id",
            ids,
        ).fetchall():
            invitations[int(signal_id)].append({"agent": agent, "channel": channel, "status": status, "error": error})
        for signal_id, agent, action in tx.execute(
            f"SELECT signal_id, agent_id, action FROM ack WHERE signal_id IN ({marks(len(ids))}) ORDER BY id", ids
        ).fetchall():
            acks[int(signal_id)] = acks.get(int(signal_id), 0) + 1
            answers[int(signal_id)].append({"agent": agent, "action": action})
    return [
        {
            "row": id_,
            "id": event_id,
            "source": source,
            "type": type_,
            "status": status,
            "received_at": int(received_at),
            "reason": reason,
            "invitations": invitations.get(id_, []),
            "acks": acks.get(id_, 0),
            "answers": answers.get(id_, []),
        }
        for id_, event_id, source, type_, status, received_at, reason in signals
    ]
