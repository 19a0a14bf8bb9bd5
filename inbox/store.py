"""Storage verbs. Writes are sync functions over a writer `Tx` (see `inbox.writer`);
reads are async functions over the read engine. Both return plain values.

Uniqueness comes from constraints and `ON CONFLICT`, never from check-then-insert.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from inbox.models import (
    AckRow,
    AgentRow,
    AuditRow,
    ConsentGrantRow,
    DoneRow,
    InvitationRow,
    OutboxRow,
    SignalRow,
)
from inbox.writer import Tx

CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
OPEN_STATUSES = ("invited", "acked")


def _marks(count: int) -> str:
    """`?, ?, ?` for an IN list of `count` values."""
    return ", ".join("?" * count)


#: one encoder for every row: json.dumps with options builds a new one per call
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=str)


def dumps(value: Any) -> str:
    return _ENCODER.encode(value)


def dumps_list(values: Sequence[str]) -> str:
    """The hot path's lists (gate failures) are usually empty: skip the encoder then."""
    return dumps(list(values)) if values else "[]"


@dataclass(frozen=True)
class StoredSignal:
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


SIGNAL_COLUMNS = (
    "source, event_id, type, subject, status, body, body_sha256, reason, action_origin, origin_uncertain,"
    " policy_gate_result, gate_failures, received_at, updated_at"
)
AUDIT_COLUMNS = "at, kind, source, event_id, agent_id, action_origin, policy_gate_result, reason, gate_failures, detail"


def known_signals(tx: Tx, source: str, event_ids: Sequence[str]) -> dict[str, tuple[int, str, str]]:
    """(id, status, body_sha256) of the stored signals among these ids of one source."""
    if not event_ids:
        return {}
    marks = _marks(len(event_ids))
    rows = tx.execute(
        f"SELECT event_id, id, status, body_sha256 FROM signal WHERE source = ? AND event_id IN ({marks})",
        (source, *event_ids),
    ).fetchall()
    return {str(r[0]): (int(r[1]), str(r[2]), str(r[3])) for r in rows}


def known_nonces(tx: Tx, source: str, nonces: Sequence[str]) -> dict[str, str]:
    """nonce → the event id that used it, among these nonces of one source."""
    if not nonces:
        return {}
    marks = _marks(len(nonces))
    rows = tx.execute(
        f"SELECT nonce, event_id FROM seen_nonce WHERE source = ? AND nonce IN ({marks})", (source, *nonces)
    )
    return {str(r[0]): str(r[1]) for r in rows.fetchall()}


def insert_signals(tx: Tx, rows: Sequence[Sequence[Any]]) -> None:
    """Many new signals at once (rows in SIGNAL_COLUMNS order); the single writer checked they are new."""
    tx.executemany(f"INSERT INTO signal ({SIGNAL_COLUMNS}) VALUES ({_marks(14)})", rows)


def insert_signal_returning_id(tx: Tx, row: Sequence[Any]) -> int:
    """One new signal (a row in SIGNAL_COLUMNS order) whose id is needed for its work rows."""
    return int(
        tx.execute(f"INSERT INTO signal ({SIGNAL_COLUMNS}) VALUES ({_marks(14)}) RETURNING id", row).fetchone()[0]
    )


def insert_nonces(tx: Tx, rows: Sequence[Sequence[Any]]) -> None:
    tx.executemany("INSERT INTO seen_nonce (source, nonce, event_id, seen_at) VALUES (?, ?, ?, ?)", rows)


def insert_audits(tx: Tx, rows: Sequence[Sequence[Any]]) -> None:
    tx.executemany(f"INSERT INTO audit ({AUDIT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)


def insert_audit(
    tx: Tx,
    *,
    kind: str,
    at: int,
    action_origin: str,
    policy_gate_result: str,
    reason: str,
    source: str | None = None,
    event_id: str | None = None,
    agent_id: str | None = None,
    gate_failures: Sequence[str] = (),
    detail: dict[str, Any] | None = None,
) -> None:
    tx.execute(
        "INSERT INTO audit (at, kind, source, event_id, agent_id, action_origin, policy_gate_result, reason,"
        " gate_failures, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            at,
            kind,
            source,
            event_id,
            agent_id,
            action_origin,
            policy_gate_result,
            reason,
            dumps_list(gate_failures),
            dumps(detail) if detail else "{}",
        ),
    )


def open_codes(tx: Tx, agent_id: str) -> set[str]:
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
    row = tx.execute(
        "INSERT INTO invitation (signal_id, agent_id, channel, code, status, created_at, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
        (signal_id, agent_id, channel, code, status, at, at),
    ).fetchone()
    return int(row[0])


def enqueue(tx: Tx, *, kind: str, payload: dict[str, Any], at: int, ref_id: int | None = None) -> int:
    """Add outbox work, due now."""
    row = tx.execute(
        "INSERT INTO outbox (kind, ref_id, payload, status, attempts, next_attempt_at, created_at, updated_at)"
        " VALUES (?, ?, ?, 'pending', 0, ?, ?, ?) RETURNING id",
        (kind, ref_id, dumps(payload), at, at, at),
    ).fetchone()
    return int(row[0])


def directory_version(tx: Tx) -> int:
    row = tx.execute("SELECT version FROM directory_state WHERE id = 1").fetchone()
    return int(row[0]) if row else 0


def bump_directory(tx: Tx) -> None:
    tx.execute("UPDATE directory_state SET version = version + 1 WHERE id = 1")


def recent_invites(tx: Tx, agent_ids: Iterable[str], since: int) -> dict[str, int]:
    """Invitations decided for these agents since `since` (ms): the throttle's count."""
    ids = sorted(set(agent_ids))
    if not ids:
        return {}
    marks = _marks(len(ids))
    rows = tx.execute(
        f"SELECT agent_id, COUNT(*) FROM invitation WHERE created_at >= ? AND agent_id IN ({marks})"
        " AND status <> 'skipped' GROUP BY agent_id",
        (since, *ids),
    ).fetchall()
    return {str(r[0]): int(r[1]) for r in rows}


AGENT_COLUMNS = (
    "id, display, group_ids, slack_user, phone, whatsapp, channels, quiet_hours, tz, active, opted_out, removed_at"
)
GRANT_COLUMNS = "id, subject, scope, group_ids, channels, min_confidence, expires_at, granted_by, granted_at, revoked_at, revoked_by"


def _strings(text: Any) -> list[str]:
    """A stored JSON list of strings; anything else (a row written by hand) reads as empty."""
    return _strings_or_none(text) or []


def _strings_or_none(text: Any) -> list[str] | None:
    """A stored JSON list of strings, or None when the row holds something else."""
    try:
        value = json.loads(text)
    except (TypeError, ValueError, RecursionError):
        return None
    return value if isinstance(value, list) and all(isinstance(v, str) for v in value) else None


def agent_dict(row: Sequence[Any]) -> dict[str, Any]:
    """An agent row as plain values; never raises for one odd row."""
    keys = [k.strip() for k in AGENT_COLUMNS.split(",")]
    d = dict(zip(keys, row, strict=True))  # the row was selected by these very columns
    for k in ("group_ids", "channels", "opted_out"):
        d[k] = _strings(d[k])
    d["active"] = bool(d["active"]) and d["removed_at"] is None
    return d


def grant_dict(row: Sequence[Any]) -> dict[str, Any]:
    """A grant row as plain values; never raises for one odd row, and fails closed.

    Consent is never widened by a value the relay cannot read: an unreadable scope, group
    or channel list, expiry or revocation reads as a grant revoked at the epoch.
    """
    keys = [k.strip() for k in GRANT_COLUMNS.split(",")]
    d = dict(zip(keys, row, strict=True))  # the row was selected by these very columns
    readable = True
    for k in ("scope", "group_ids", "channels"):
        value = _strings_or_none(d[k])
        readable &= value is not None
        d[k] = value or []
    for k in ("expires_at", "granted_at", "revoked_at"):
        if d[k] is not None and not isinstance(d[k], int):
            readable = False
            d[k] = 0
    if not readable and d["revoked_at"] is None:
        d["revoked_at"] = 0
    return d


def load_directory(tx: Tx) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The agents in the directory (not removed), and the grants not revoked (expiry is the router's to judge)."""
    agents = [
        agent_dict(r)
        for r in tx.execute(f"SELECT {AGENT_COLUMNS} FROM agent WHERE removed_at IS NULL ORDER BY id").fetchall()
    ]
    grants = [
        grant_dict(r)
        for r in tx.execute(
            f"SELECT {GRANT_COLUMNS} FROM consent_grant WHERE revoked_at IS NULL ORDER BY granted_at"
        ).fetchall()
    ]
    return agents, grants


# Reads -------------------------------------------------------------------------------


async def find_signals(engine: AsyncEngine, event_id: str, source: str | None = None) -> list[StoredSignal]:
    async with AsyncSession(engine) as session:
        query = select(SignalRow).where(SignalRow.event_id == event_id)
        if source:
            query = query.where(SignalRow.source == source)
        return [_stored(r) for r in (await session.exec(query.order_by(col(SignalRow.id)))).all()]


async def signal_by_id(engine: AsyncEngine, signal_id: int) -> StoredSignal | None:
    async with AsyncSession(engine) as session:
        row = await session.get(SignalRow, signal_id)
        return None if row is None else _stored(row)


async def loop_detail(engine: AsyncEngine, signal_id: int) -> dict[str, Any]:
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
    return {
        "invitations": [
            {"id": i.id, "agent": i.agent_id, "channel": i.channel, "status": i.status, "code": i.code}
            for i in invitations
        ],
        "acks": [
            {
                "agent": a.agent_id,
                "display": displays.get(a.agent_id, a.agent_id),
                "action": a.action,
                "at": a.at,
                "via": a.via,
            }
            for a in acks
        ],
        "done": None
        if done is None
        else {
            "agent": done.agent_id,
            "display": displays.get(done.agent_id, done.agent_id),
            "outcome": done.outcome,
            "note": done.note,
            "at": done.at,
            "via": done.via,
        },
    }


async def count_rows(engine: AsyncEngine, table: type[Any]) -> int:
    async with AsyncSession(engine) as session:
        return int((await session.exec(select(func.count()).select_from(table))).one())


TABLES = {
    "signal": SignalRow,
    "audit": AuditRow,
    "invitation": InvitationRow,
    "outbox": OutboxRow,
    "grant": ConsentGrantRow,
}


# Directory and consent (writes bump the directory version: the next signal sees them) --


def insert_agent(tx: Tx, agent: dict[str, Any], at: int) -> bool:
    """Add an agent; False when the id is taken (by an agent, or by a removed one's tombstone)."""
    cur = tx.execute(
        f"INSERT INTO agent ({AGENT_COLUMNS}, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, ?)"
        " ON CONFLICT (id) DO NOTHING",
        (*_agent_values(agent), at, at),
    )
    if cur.rowcount == 1:
        bump_directory(tx)
    return cur.rowcount == 1


def _agent_values(agent: dict[str, Any]) -> tuple[Any, ...]:
    return (
        agent["id"],
        agent["display"],
        dumps(agent.get("group_ids", [])),
        agent.get("slack_user"),
        agent.get("phone"),
        agent.get("whatsapp"),
        dumps(agent.get("channels", [])),
        agent.get("quiet_hours"),
        agent.get("tz"),
        int(agent.get("active", True)),
        dumps(agent.get("opted_out", [])),
    )


def replace_agent(tx: Tx, agent: dict[str, Any], at: int) -> bool:
    cur = tx.execute(
        "UPDATE agent SET display = ?, group_ids = ?, slack_user = ?, phone = ?, whatsapp = ?, channels = ?,"
        " quiet_hours = ?, tz = ?, active = ?, opted_out = ?, updated_at = ? WHERE id = ? AND removed_at IS NULL",
        (*_agent_values(agent)[1:], at, agent["id"]),
    )
    if cur.rowcount == 1:
        bump_directory(tx)
    return cur.rowcount == 1


def get_agent_tx(tx: Tx, agent_id: str) -> dict[str, Any] | None:
    """An agent by id, a removed one's tombstone included (`removed_at` set, inactive)."""
    row = tx.execute(f"SELECT {AGENT_COLUMNS} FROM agent WHERE id = ?", (agent_id,)).fetchone()
    return None if row is None else agent_dict(row)


def address_taken(tx: Tx, agent: dict[str, Any]) -> str | None:
    """The first of slack_user / phone / whatsapp that another agent already has."""
    for column in ("slack_user", "phone", "whatsapp"):
        value = agent.get(column)
        if value and tx.execute(f"SELECT 1 FROM agent WHERE {column} = ? AND id <> ?", (value, agent["id"])).fetchone():
            return column
    return None


def remove_agent(tx: Tx, agent_id: str, at: int) -> bool:
    """Leave a tombstone: the id and display stay (the id is never reused), the addresses go
    (a number or Slack user may later belong to someone else). False when no such agent."""
    cur = tx.execute(
        "UPDATE agent SET removed_at = ?, active = 0, slack_user = NULL, phone = NULL, whatsapp = NULL, updated_at = ?"
        " WHERE id = ? AND removed_at IS NULL",
        (at, at, agent_id),
    )
    if cur.rowcount == 1:
        bump_directory(tx)
    return cur.rowcount == 1


def insert_grant(tx: Tx, grant: dict[str, Any]) -> None:
    tx.execute(
        f"INSERT INTO consent_grant ({GRANT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL)",
        (
            grant["id"],
            grant["subject"],
            dumps(grant["scope"]),
            dumps(grant["group_ids"]),
            dumps(grant.get("channels", [])),
            grant.get("min_confidence"),
            grant.get("expires_at"),
            grant["granted_by"],
            grant["granted_at"],
        ),
    )
    bump_directory(tx)


def get_grant_tx(tx: Tx, grant_id: str) -> dict[str, Any] | None:
    row = tx.execute(f"SELECT {GRANT_COLUMNS} FROM consent_grant WHERE id = ?", (grant_id,)).fetchone()
    return None if row is None else grant_dict(row)


def revoke_grant(tx: Tx, grant_id: str, by: str, at: int) -> dict[str, Any] | None:
    """Record a revocation (once; the row stays). None when no such grant."""
    tx.execute(
        "UPDATE consent_grant SET revoked_at = ?, revoked_by = ? WHERE id = ? AND revoked_at IS NULL",
        (at, by, grant_id),
    )
    bump_directory(tx)
    return get_grant_tx(tx, grant_id)


async def list_agents(engine: AsyncEngine) -> list[dict[str, Any]]:
    """The directory: every agent not removed."""
    async with engine.connect() as conn:
        rows = (
            await conn.exec_driver_sql(f"SELECT {AGENT_COLUMNS} FROM agent WHERE removed_at IS NULL ORDER BY id")
        ).fetchall()
    return [agent_dict(r) for r in rows]


async def directory_ever_used(engine: AsyncEngine) -> bool:
    """Whether any agent was ever added (tombstones count): dev mode seeds only a new directory."""
    async with engine.connect() as conn:
        return (await conn.exec_driver_sql("SELECT 1 FROM agent LIMIT 1")).first() is not None


async def list_grants(engine: AsyncEngine, subject: str | None = None) -> list[dict[str, Any]]:
    async with AsyncSession(engine) as session:
        query = select(ConsentGrantRow).order_by(col(ConsentGrantRow.granted_at), col(ConsentGrantRow.id))
        if subject:
            query = query.where(ConsentGrantRow.subject == subject)
        rows = (await session.exec(query)).all()
    return [grant_dict(tuple(getattr(r, k.strip()) for k in GRANT_COLUMNS.split(","))) for r in rows]


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


async def audit_page(engine: AsyncEngine, *, before_id: int | None = None, limit: int = 50) -> list[dict[str, Any]]:
    async with AsyncSession(engine) as session:
        query = select(AuditRow).order_by(col(AuditRow.id).desc()).limit(limit)
        if before_id is not None:
            query = query.where(col(AuditRow.id) < before_id)
        rows = (await session.exec(query)).all()
    return [
        {
            "row": r.id,
            "at": r.at,
            "kind": r.kind,
            "source": r.source,
            "event_id": r.event_id,
            "agent": r.agent_id,
            "action_origin": r.action_origin,
            "policy_gate_result": r.policy_gate_result,
            "reason": r.reason,
            "gate_failures": json.loads(r.gate_failures),
            "detail": json.loads(r.detail),
        }
        for r in rows
    ]


# Invitations as channels and answer pages need them ---------------------------------


@dataclass(frozen=True)
class InvitationView:
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


def _view(i: InvitationRow, s: SignalRow) -> InvitationView:
    return InvitationView(
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


async def invitation(engine: AsyncEngine, invitation_id: int) -> InvitationView | None:
    async with AsyncSession(engine) as session:
        pair = (
            await session.exec(
                select(InvitationRow, SignalRow)
                .join(SignalRow, col(SignalRow.id) == col(InvitationRow.signal_id))
                .where(InvitationRow.id == invitation_id)
            )
        ).first()
    return None if pair is None else _view(*pair)


async def open_invitations(engine: AsyncEngine, agent_id: str) -> list[InvitationView]:
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
    return [_view(i, s) for i, s in rows]


async def agent_by(engine: AsyncEngine, **where: str) -> dict[str, Any] | None:
    """One agent by a single unique-ish field: id, slack_user, phone or whatsapp."""
    ((column, value),) = where.items()
    if column not in ("id", "slack_user", "phone", "whatsapp"):
        raise ValueError(column)
    async with AsyncSession(engine) as session:
        row = (await session.exec(select(AgentRow).where(getattr(AgentRow, column) == value))).first()
    if row is None:
        return None
    return agent_dict(tuple(getattr(row, k.strip()) for k in AGENT_COLUMNS.split(",")))


def set_opted_out(tx: Tx, agent_id: str, channel: str, opted_out: bool, at: int) -> bool:
    current = get_agent_tx(tx, agent_id)
    if current is None:
        return False
    channels = set(current["opted_out"])
    channels.add(channel) if opted_out else channels.discard(channel)
    current["opted_out"] = sorted(channels)
    return replace_agent(tx, current, at)


async def raw_body(engine: AsyncEngine, signal_id: int) -> bytes | None:
    """The bytes a sender posted (None once retention purged them)."""
    async with AsyncSession(engine) as session:
        row = await session.get(SignalRow, signal_id)
    return None if row is None or row.body is None else bytes(row.body)


def purge_bodies(tx: Tx, older_than: int) -> int:
    """Drop raw bodies and inbound-message records past retention; the loop record stays."""
    purged = tx.execute(
        "UPDATE signal SET body = NULL WHERE received_at < ? AND body IS NOT NULL", (older_than,)
    ).rowcount
    tx.execute("DELETE FROM inbound_message WHERE at < ?", (older_than,))
    tx.execute("DELETE FROM verification_attempt WHERE at < ?", (older_than,))
    return purged
