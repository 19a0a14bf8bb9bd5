"""The audit trail: one row per decision, answer, refusal and send-time skip.

Writes are sync functions over the writer's `Tx` in plain SQL (intake inserts a group's
rows with `executemany`, as `AuditValues` named tuples). The page is a read job too
(`inbox.reader.Reader`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, NamedTuple

from inbox.rows import dumps, dumps_list, marks, strings
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


def audit_page(
    tx: Tx, *, before_id: int | None = None, limit: int = 50, kinds: Sequence[str] = ()
) -> list[dict[str, Any]]:
    """Audit rows newest first, older than `before_id` when given, of these kinds when named."""
    conditions: list[str] = []
    params: list[Any] = []
    if before_id is not None:
        conditions.append("id < ?")
        params.append(before_id)
    if kinds:
        conditions.append(f"kind IN ({marks(len(kinds))})")
        params.extend(kinds)
    where = f"WHERE {' AND '.join(conditions)} " if conditions else ""
    rows = tx.execute(
        "SELECT id, at, kind, source, event_id, agent_id, action_origin, policy_gate_result, reason, gate_failures,"
        f" detail FROM audit {where}ORDER BY id DESC LIMIT ?",
        (*params, limit),
    ).fetchall()
    return [
        {
            "row": id_,
            "at": int(at),
            "kind": kind,
            "source": source,
            "event_id": event_id,
            "agent": agent,
            "action_origin": origin,
            "policy_gate_result": gate,
            "reason": reason,
            "gate_failures": list(strings(failures)),
            "detail": _object(detail),
        }
        for id_, at, kind, source, event_id, agent, origin, gate, reason, failures, detail in rows
    ]


def _object(text: Any) -> dict[str, Any]:
    """A stored JSON object; anything else (a row written by hand) reads as empty."""
    try:
        value = json.loads(text)
    except (TypeError, ValueError, RecursionError):
        return {}
    return value if isinstance(value, dict) else {}
