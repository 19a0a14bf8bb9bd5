"""Signals: what senders posted, the nonces they used, their raw bodies and retention.

Writes are sync functions over the writer's `Tx` in plain SQL: intake's hot path inserts
whole groups with `executemany`, rows given as `SignalValues` named tuples.
Reads go through SQLModel over the read engine: typed rows and IN lists that read the
same on SQLite and PostgreSQL. Both return plain values (`StoredSignal`, dicts for pages).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import func
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from inbox.models import AckRow, InvitationRow, SignalRow
from inbox.rows import marks
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


def _stored(row: SignalRow) -> StoredSignal:
    return StoredSignal(
        id=row.id or 0,
        source=row.source,
        event_id=row.event_id,
        type=row.type,
        subject=row.subject,
        status=row.status,
        body_sha256=row.body_sha256,
        reason=row.reason,
        action_origin=row.action_origin,
        origin_uncertain=bool(row.origin_uncertain),
        policy_gate_result=row.policy_gate_result,
        gate_failures=json.loads(row.gate_failures),
        received_at=row.received_at,
        updated_at=row.updated_at,
    )


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


# Reads -------------------------------------------------------------------------------


async def find_signals(engine: AsyncEngine, event_id: str, source: str | None = None) -> list[StoredSignal]:
    """The signals stored under this event id (of one source, when given), oldest first."""
    async with AsyncSession(engine) as session:
        query = select(SignalRow).where(SignalRow.event_id == event_id)
        if source:
            query = query.where(SignalRow.source == source)
        return [_stored(r) for r in (await session.exec(query.order_by(col(SignalRow.id)))).all()]


async def signal_by_id(engine: AsyncEngine, signal_id: int) -> StoredSignal | None:
    async with AsyncSession(engine) as session:
        row = await session.get(SignalRow, signal_id)
        return None if row is None else _stored(row)


async def raw_body(engine: AsyncEngine, signal_id: int) -> bytes | None:
    """The bytes a sender posted (None once retention purged them)."""
    async with AsyncSession(engine) as session:
        row = await session.get(SignalRow, signal_id)
    return None if row is None or row.body is None else bytes(row.body)


async def count_rows(engine: AsyncEngine, table: type[Any]) -> int:
    """How many rows a table holds."""
    async with AsyncSession(engine) as session:
        return int((await session.exec(select(func.count()).select_from(table))).one())


async def inbox_page(
    engine: AsyncEngine, *, statuses: Sequence[str] = (), before_id: int | None = None, limit: int = 50
) -> list[dict[str, Any]]:
    """Loops newest first, with their invitations, ack count and whether done."""
    async with AsyncSession(engine) as session:
        query = select(SignalRow).order_by(col(SignalRow.id).desc()).limit(limit)
        if statuses:
            query = query.where(col(SignalRow.status).in_(list(statuses)))
        if before_id is not None:
            query = query.where(col(SignalRow.id) < before_id)
        signals = (await session.exec(query)).all()
        ids = [s.id for s in signals if s.id is not None]
        invitations: dict[int, list[dict[str, Any]]] = {i: [] for i in ids}
        acks: dict[int, int] = {}
        if ids:
            for inv in (
                await session.exec(
                    select(InvitationRow).where(col(InvitationRow.signal_id).in_(ids)).order_by(col(InvitationRow.id))
                )
            ).all():
                invitations[inv.signal_id].append(
                    {"agent": inv.agent_id, "channel": inv.channel, "status": inv.status, "error": inv.error}
                )
            for signal_id, count in (
                await session.exec(
                    select(AckRow.signal_id, func.count())
                    .where(col(AckRow.signal_id).in_(ids))
                    .group_by(col(AckRow.signal_id))
                )
            ).all():
                acks[signal_id] = count
    return [
        {
            "row": s.id,
            "id": s.event_id,
            "source": s.source,
            "type": s.type,
            "status": s.status,
            "received_at": s.received_at,
            "reason": s.reason,
            "invitations": invitations.get(s.id or 0, []),
            "acks": acks.get(s.id or 0, 0),
        }
        for s in signals
    ]
