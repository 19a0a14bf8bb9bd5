"""Invitations: who was asked to answer a loop, their reply codes, and the loop as it stands.

Writes are sync functions over the writer's `Tx` in plain SQL (intake's hot path). Reads are
sync too, run by the reader (`inbox.reader.Reader`) or inside a write job: an invitation is
read joined with its signal, and the loop detail gathers three tables and the agents'
displays in one job. Both return frozen records.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from inbox.rows import marks
from inbox.tx import Tx

CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
#: a loop whose invitations can still be answered.
OPEN_STATUSES = ("invited", "acked")


@dataclass(frozen=True, slots=True)
class InvitationRecord:
    """An invitation with what its signal row says about the loop."""

    id: int
    signal_id: int
    agent_id: str
    channel: str
    code: str
    status: str
    provider_id: str | None
    loop_status: str
    source: str
    event_id: str
    #: the sender's bytes, which the signal is read back from (None once retention purged them).
    body: bytes | None


@dataclass(frozen=True, slots=True)
class InvitationLine:
    """One invitation of a loop, as the loop shows it."""

    id: int
    agent: str
    channel: str
    status: str
    code: str | None


@dataclass(frozen=True, slots=True)
class AckLine:
    """One agent's ack, with the display they had when read (their id once they are gone)."""

    agent: str
    display: str
    action: str
    at: int
    via: str


@dataclass(frozen=True, slots=True)
class DoneLine:
    """The done that closed a loop."""

    agent: str
    display: str
    outcome: str
    note: str
    at: int
    via: str


@dataclass(frozen=True, slots=True)
class LoopDetail:
    """A loop's invitations, acks (oldest first) and its done, if any."""

    invitations: tuple[InvitationLine, ...]
    acks: tuple[AckLine, ...]
    done: DoneLine | None


# Inside a writer job ------------------------------------------------------------------


def open_codes(tx: Tx, agent_id: str) -> set[str]:
    """The reply codes of an agent's invitations whose loop is still open."""
    rows = tx.execute(
        "SELECT i.code FROM invitation i JOIN signal s ON s.id = i.signal_id"
        " WHERE i.agent_id = ? AND i.code IS NOT NULL AND s.status IN (?, ?)",
        (agent_id, *OPEN_STATUSES),
    ).fetchall()
    return {str(r[0]) for r in rows}


def new_code(taken: set[str]) -> str:
    """A 4-character reply code not among `taken` (the agent's open invitations)."""
    while True:
        code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(4))
        if code not in taken:
            return code


def insert_skipped(tx: Tx, *, signal_id: int, agent_ids: Sequence[str], at: int) -> None:
    """Agents of the audience the decision passed over (throttle, quiet hours, no channel):
    visible on the loop as `skipped`; never sent, never counted, never able to answer."""
    tx.executemany(
        "INSERT INTO invitation (signal_id, agent_id, channel, code, status, created_at, updated_at)"
        " VALUES (?, ?, '', NULL, 'skipped', ?, ?)",
        [(signal_id, agent_id, at, at) for agent_id in agent_ids],
    )


def insert_invitation(tx: Tx, *, signal_id: int, agent_id: str, channel: str, code: str, status: str, at: int) -> int:
    """A new invitation of one agent on one channel; its id."""
    row = tx.execute(
        "INSERT INTO invitation (signal_id, agent_id, channel, code, status, created_at, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
        (signal_id, agent_id, channel, code, status, at, at),
    ).fetchone()
    return int(row[0])


def recent_invites(tx: Tx, agent_ids: Iterable[str], since: int) -> dict[str, int]:
    """Invitations decided for these agents since `since` (ms): the throttle's count."""
    ids = sorted(set(agent_ids))
    if not ids:
        return {}
    rows = tx.execute(
        f"SELECT agent_id, COUNT(*) FROM invitation WHERE created_at >= ? AND agent_id IN ({marks(len(ids))})"
        " AND status <> 'skipped' GROUP BY agent_id",
        (since, *ids),
    ).fetchall()
    return {str(r[0]): int(r[1]) for r in rows}


# Reads (a reader's or a writer's job) -------------------------------------------------


def holder_and_channel(tx: Tx, invitation_id: int) -> tuple[str, str] | None:
    """Whose invitation this is and on which channel."""
    row = tx.execute("SELECT agent_id, channel FROM invitation WHERE id = ?", (invitation_id,)).fetchone()
    return None if row is None else (str(row[0]), str(row[1]))


def loop_of(tx: Tx, invitation_id: int) -> tuple[str, str, str, str] | None:
    """(source, event id, agent, channel) of an invitation's loop."""
    row = tx.execute(
        "SELECT s.source, s.event_id, i.agent_id, i.channel FROM invitation i JOIN signal s ON s.id = i.signal_id"
        " WHERE i.id = ?",
        (invitation_id,),
    ).fetchone()
    return None if row is None else (str(row[0]), str(row[1]), str(row[2]), str(row[3]))


_RECORD_COLUMNS = (
    "i.id, i.signal_id, i.agent_id, i.channel, i.code, i.status, i.provider_id, s.status, s.source, s.event_id, s.body"
)
_RECORD_FROM = f"SELECT {_RECORD_COLUMNS} FROM invitation i JOIN signal s ON s.id = i.signal_id"


def _record(row: Sequence[Any]) -> InvitationRecord:
    (id_, signal_id, agent_id, channel, code, status, provider_id, loop_status, source, event_id, body) = row
    return InvitationRecord(
        int(id_), int(signal_id), agent_id, channel, code or "", status, provider_id, loop_status, source, event_id,
        None if body is None else bytes(body),
    )  # fmt: skip


def invitation(tx: Tx, invitation_id: int) -> InvitationRecord | None:
    """One invitation with its signal's status, source, id and bytes."""
    row = tx.execute(f"{_RECORD_FROM} WHERE i.id = ?", (invitation_id,)).fetchone()
    return None if row is None else _record(row)


def invitations_by_id(tx: Tx, ids: Sequence[int]) -> dict[int, InvitationRecord]:
    """These invitations with their signals (what a batch of sends needs), in one statement."""
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    rows = tx.execute(f"{_RECORD_FROM} WHERE i.id IN ({marks(len(wanted))})", wanted).fetchall()
    return {record.id: record for record in map(_record, rows)}


def open_invitations(tx: Tx, agent_id: str) -> list[InvitationRecord]:
    """An agent's invitations whose loop is still open (invited or acked), oldest first."""
    rows = tx.execute(
        f"{_RECORD_FROM} WHERE i.agent_id = ? AND i.status <> 'skipped' AND s.status IN (?, ?) ORDER BY i.id",
        (agent_id, *OPEN_STATUSES),
    ).fetchall()
    return [_record(r) for r in rows]


def loop_detail(tx: Tx, signal_id: int) -> LoopDetail:
    """Invitations, acks (with the agent's display; their id once they are gone) and the done of one signal."""
    invitations = tx.execute(
        "SELECT id, agent_id, channel, status, code FROM invitation WHERE signal_id = ? ORDER BY id", (signal_id,)
    ).fetchall()
    acks = tx.execute(
        "SELECT k.agent_id, COALESCE(a.display, k.agent_id), k.action, k.at, k.via FROM ack k"
        " LEFT JOIN agent a ON a.id = k.agent_id WHERE k.signal_id = ? ORDER BY k.id",
        (signal_id,),
    ).fetchall()
    done = tx.execute(
        "SELECT d.agent_id, COALESCE(a.display, d.agent_id), d.outcome, d.note, d.at, d.via FROM done d"
        " LEFT JOIN agent a ON a.id = d.agent_id WHERE d.signal_id = ?",
        (signal_id,),
    ).fetchone()
    return LoopDetail(
        invitations=tuple(InvitationLine(int(i), a, c, s, code) for i, a, c, s, code in invitations),
        acks=tuple(AckLine(a, d, action, int(at), via) for a, d, action, at, via in acks),
        done=None if done is None else DoneLine(done[0], done[1], done[2], done[3], int(done[4]), done[5]),
    )
