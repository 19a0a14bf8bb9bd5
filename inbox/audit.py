"""The audit trail: one row per decision, answer, refusal and send-time skip.

Writes are sync functions over the writer's `Tx` in plain SQL (intake inserts a group's
rows with `executemany`, as `AuditValues` named tuples). The page read goes through SQLModel
over the read engine, like the other operator pages.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, NamedTuple

from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from inbox.models import AuditRow
from inbox.rows import dumps, dumps_list, marks
from inbox.tx import Tx


class AuditValues(NamedTuple):
    """A new audit row: a tuple, for intake's `executemany` on the hot path."""

    at: int
    kind: str
    source: str | None
    event_id: str | None
    agent_id: str | None
    action_origin: str
    policy_gate_result: str
    reason: str
    #: JSON text (`inbox.rows.dumps_list`)
    gate_failures: str
    #: JSON text; ids and names of things, never care data
    detail: str


AUDIT_COLUMNS = ", ".join(AuditValues._fields)
_INSERT = f"INSERT INTO audit ({AUDIT_COLUMNS}) VALUES ({marks(len(AuditValues._fields))})"


def insert_audits(tx: Tx, rows: Sequence[AuditValues]) -> None:
    """Many audit rows at once."""
    tx.executemany(_INSERT, rows)


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
    """One audit row; `detail` holds ids and names of things, never care data."""
    tx.execute(
        _INSERT,
        AuditValues(
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


async def audit_page(engine: AsyncEngine, *, before_id: int | None = None, limit: int = 50) -> list[dict[str, Any]]:
    """Audit rows newest first, older than `before_id` when given."""
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
