"""Invitations: who was asked to answer a loop, stored, counted for the throttle and read back.

Writes are sync functions over the writer's `Tx` in plain SQL (intake's hot path); each
queued invitation holds a reply code (`inbox.reply_codes`), and the throttle counts an
agent's recent invitations under that agent's lock. Reads are sync too, run by the reader
(`inbox.reader.Reader`) or inside a write job: an invitation is read joined with its
signal, as a frozen record. The loop an invitation belongs to, as it stands, is
`inbox.loop_detail`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from inbox.reply_codes import ReplyCodeValues, insert_reply_codes, pick_codes
from inbox.rows import marks
from inbox.tx import Tx, reserve_ids

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


# Inside a writer job ------------------------------------------------------------------


class InvitationValues(NamedTuple):
    """A new invitation row as intake inserts it, id included (`inbox.tx.reserve_ids`)."""

    id: int
    signal_id: int
    agent_id: str
    channel: str
    #: None for a skipped agent, who cannot answer
    code: str | None
    status: str
    created_at: int
    updated_at: int
    #: who asked for it, when a person did ("admin:NAME", invite now); None when the relay decided
    invited_by: str | None = None


class Planned(NamedTuple):
    """An invitation to store: queued on `channel`, or shown skipped on the loop when `channel` is ""."""

    signal_id: int
    agent_id: str
    channel: str
    invited_by: str | None = None
    #: the agent's skipped invitation on this loop, queued anew in its place (a person's instruction)
    replaces: int | None = None


_INSERT_INVITATION = (
    f"INSERT INTO invitation ({', '.join(InvitationValues._fields)}) VALUES ({marks(len(InvitationValues._fields))})"
)
#: agents per throttle count statement (SQLite allows 500 terms in a compound SELECT)
_AGENTS_PER_COUNT = 100


def insert_invitations(tx: Tx, rows: Sequence[InvitationValues]) -> None:
    """New invitations with their reserved ids, queued or skipped. A skipped one (throttle,
    quiet hours, no channel) is visible on the loop; never sent, never counted, never able to answer."""
    tx.executemany(_INSERT_INVITATION, rows)


def store_planned(tx: Tx, planned: Sequence[Planned], at: int) -> list[tuple[str, int | None, dict[str, Any]]]:
    """New invitations, as intake decides them and as people ask for them (invite now): each
    table written with one `executemany` on ids reserved up front, a reply code for each
    queued one; the outbox rows that send them, for the caller to enqueue with its own.

    Ids are reserved first: on SQLite they are free only until something else goes into the
    table. An invitation that `replaces` a skipped one keeps that row's id (so nothing that
    named the skipped invitation comes to name another) and is queued in its place.
    """
    if not planned:
        return []
    ids = iter(reserve_ids(tx, "invitation", sum(1 for p in planned if p.replaces is None)))
    queued = [p for p in planned if p.channel]
    codes = iter(pick_codes(tx, [p.agent_id for p in queued]))
    rows: list[InvitationValues] = []
    code_rows: list[ReplyCodeValues] = []
    work: list[tuple[str, int | None, dict[str, Any]]] = []
    for p in planned:
        if not p.channel:
            rows.append(InvitationValues(next(ids), p.signal_id, p.agent_id, "", None, "skipped", at, at))
            continue
        code = next(codes)
        if p.replaces is None:
            invitation_id = next(ids)
            rows.append(
                InvitationValues(
                    invitation_id, p.signal_id, p.agent_id, p.channel, code, "queued", at, at, p.invited_by
                )
            )
        else:
            invitation_id = p.replaces
            tx.execute("DELETE FROM reply_code WHERE invitation_id = ?", (invitation_id,))
            tx.execute(
                "UPDATE invitation SET channel = ?, code = ?, status = 'queued', provider_id = NULL, error = NULL,"
                " invited_by = ?, updated_at = ? WHERE id = ? AND status = 'skipped'",
                (p.channel, code, p.invited_by, at, invitation_id),
            )
        code_rows.append(ReplyCodeValues(p.agent_id, code, p.signal_id, invitation_id))
        # what a person asked for is theirs: the kill switch and shadow mode do not hold it back
        kind = "invite" if p.invited_by is None else "directed_invite"
        work.append((kind, invitation_id, {"invitation_id": invitation_id}))
    insert_invitations(tx, rows)
    insert_reply_codes(tx, code_rows)
    return work


def held_on(tx: Tx, signal_id: int) -> dict[str, tuple[int, str]]:
    """agent id → (id, status) of their invitation on this loop (skipped ones included)."""
    rows = tx.execute("SELECT agent_id, id, status FROM invitation WHERE signal_id = ?", (signal_id,)).fetchall()
    return {str(r[0]): (int(r[1]), str(r[2])) for r in rows}


def to_update_on_join(tx: Tx, signal_id: int) -> list[int]:
    """The invitations of a loop a joined signal is shown on: those delivered to a channel whose
    message can be edited (Slack, the console); SMS and WhatsApp agents are not messaged again."""
    rows = tx.execute(
        "SELECT id FROM invitation WHERE signal_id = ? AND provider_id IS NOT NULL"
        " AND channel NOT IN ('sms', 'whatsapp') ORDER BY id",
        (signal_id,),
    ).fetchall()
    return [int(r[0]) for r in rows]


#: the first key of the PostgreSQL advisory locks held on agents ("thrt" in ASCII)
AGENT_LOCK_CLASS = 0x74687274


def agent_lock_keys(agent_ids: Iterable[str]) -> list[int]:
    """The second key of each agent's advisory lock, in the one order every transaction takes them."""
    return sorted(
        {int.from_bytes(hashlib.blake2b(a.encode(), digest_size=4).digest(), "big", signed=True) for a in agent_ids}
    )


def lock_agents(tx: Tx, agent_ids: Iterable[str]) -> None:
    """Hold these agents' throttle locks until the transaction ends (PostgreSQL; SQLite's write lock
    already makes one writer at a time).

    Taken before their invitations are counted, so two replicas never both count an agent
    under its hourly limit; taken in one statement in ascending key order (an array is
    unnested in order), so two transactions never wait on each other in a circle.
    """
    keys = agent_lock_keys(agent_ids)
    if tx.dialect != "postgresql" or not keys:
        return
    tx.execute(
        "SELECT pg_advisory_xact_lock(CAST(? AS integer), k) FROM unnest(CAST(? AS integer[])) AS k",
        (AGENT_LOCK_CLASS, keys),
    ).fetchall()


def recent_invites(tx: Tx, agent_ids: Iterable[str], since: int, limit: int) -> dict[str, int]:
    """Invitations decided for these agents since `since` (ms), counted up to `limit`: the
    throttle's count. The throttle only asks whether an agent reached its limit, so each
    count reads at most `limit` entries of the not-skipped index, however busy the hour."""
    ids = sorted(set(agent_ids))
    if not ids or limit <= 0:
        return {}
    term = (
        "SELECT CAST(? AS VARCHAR(100)), COUNT(*) FROM (SELECT 1 FROM invitation"
        " WHERE agent_id = ? AND created_at >= ? AND status <> 'skipped' LIMIT ?) AS recent"
    )
    counts: dict[str, int] = {}
    for start in range(0, len(ids), _AGENTS_PER_COUNT):
        chunk = ids[start : start + _AGENTS_PER_COUNT]
        rows = tx.execute(
            " UNION ALL ".join([term] * len(chunk)),
            [value for agent_id in chunk for value in (agent_id, agent_id, since, limit)],
        ).fetchall()
        counts.update({str(r[0]): int(r[1]) for r in rows if int(r[1])})
    return counts


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
    # through the codes open loops hold: an agent's closed loops are never read
    rows = tx.execute(
        f"{_RECORD_FROM} JOIN reply_code r ON r.invitation_id = i.id"
        " WHERE r.agent_id = ? AND i.status <> 'skipped' AND s.status IN (?, ?) ORDER BY i.id",
        (agent_id, *OPEN_STATUSES),
    ).fetchall()
    return [_record(r) for r in rows]


def newest_open_invitations(tx: Tx, agent_id: str, limit: int) -> list[InvitationRecord]:
    """An agent's `limit` newest invitations whose loop is still open (not skipped), newest first."""
    # reply_code's key starts with agent_id: only this agent's open loops are read
    rows = tx.execute(
        f"{_RECORD_FROM} JOIN reply_code r ON r.invitation_id = i.id"
        " WHERE r.agent_id = ? AND i.status <> 'skipped' AND s.status IN (?, ?) ORDER BY i.id DESC LIMIT ?",
        (agent_id, *OPEN_STATUSES, max(0, limit)),
    ).fetchall()
    return [_record(r) for r in rows]
