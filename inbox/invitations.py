"""Invitations: who was asked to answer a loop, their reply codes, and the loop as it stands.

Writes are sync functions over the writer's `Tx` in plain SQL (intake's hot path). Reads go
through SQLModel over the read engine: an invitation is read joined with its signal, and
the loop detail gathers three tables and the agents' displays in one session. Both return
frozen records.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from inbox.models import AckRow, AgentRow, DoneRow, InvitationRow, SignalRow
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


# Over the read engine -----------------------------------------------------------------


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


def _record(i: InvitationRow, s: SignalRow) -> InvitationRecord:
    return InvitationRecord(
        id=i.id or 0,
        signal_id=s.id or 0,
        agent_id=i.agent_id,
        channel=i.channel,
        code=i.code or "",
        status=i.status,
        provider_id=i.provider_id,
        loop_status=s.status,
        source=s.source,
        event_id=s.event_id,
        body=None if s.body is None else bytes(s.body),
    )


async def invitation(engine: AsyncEngine, invitation_id: int) -> InvitationRecord | None:
    """One invitation with its signal's status, source, id and bytes."""
    async with AsyncSession(engine) as session:
        pair = (
            await session.exec(
                select(InvitationRow, SignalRow)
                .join(SignalRow, col(SignalRow.id) == col(InvitationRow.signal_id))
                .where(InvitationRow.id == invitation_id)
            )
        ).first()
    return None if pair is None else _record(*pair)


async def open_invitations(engine: AsyncEngine, agent_id: str) -> list[InvitationRecord]:
    """An agent's invitations whose loop is still open (invited or acked), oldest first."""
    async with AsyncSession(engine) as session:
        query = (
            select(InvitationRow, SignalRow)
            .join(SignalRow, col(SignalRow.id) == col(InvitationRow.signal_id))
            .where(
                InvitationRow.agent_id == agent_id,
                InvitationRow.status != "skipped",
                col(SignalRow.status).in_(list(OPEN_STATUSES)),
            )
            .order_by(col(InvitationRow.id))
        )
        rows = (await session.exec(query)).all()
    return [_record(i, s) for i, s in rows]


async def loop_detail(engine: AsyncEngine, signal_id: int) -> LoopDetail:
    """Invitations, acks (with the agent's display) and the done of one signal."""
    async with AsyncSession(engine) as session:
        invitations = (
            await session.exec(
                select(InvitationRow).where(InvitationRow.signal_id == signal_id).order_by(col(InvitationRow.id))
            )
        ).all()
        acks = (await session.exec(select(AckRow).where(AckRow.signal_id == signal_id).order_by(col(AckRow.id)))).all()
        done = await session.get(DoneRow, signal_id)
        ids = {a.agent_id for a in acks} | ({done.agent_id} if done else set())
        displays: dict[str, str] = {}
        if ids:
            for agent in (await session.exec(select(AgentRow).where(col(AgentRow.id).in_(ids)))).all():
                displays[agent.id] = agent.display
    return LoopDetail(
        invitations=tuple(InvitationLine(i.id or 0, i.agent_id, i.channel, i.status, i.code) for i in invitations),
        acks=tuple(AckLine(a.agent_id, displays.get(a.agent_id, a.agent_id), a.action, a.at, a.via) for a in acks),
        done=None
        if done is None
        else DoneLine(
            done.agent_id, displays.get(done.agent_id, done.agent_id), done.outcome, done.note, done.at, done.via
        ),
    )
