"""Read-only views of the inbox for operators: loops newest first, and the audit trail.

Each item is in the contract's names with times as ISO 8601; `row` is the storage row id
a page's cursor is made from (the edge drops it before answering).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from inbox import store
from relay.model import iso


async def inbox_page(
    engine: AsyncEngine, *, statuses: Sequence[str] = (), before_id: int | None = None, limit: int = 50
) -> list[dict[str, Any]]:
    """Loops newest first (of the given statuses), with their invitations and ack count."""
    rows = await store.inbox_page(engine, statuses=statuses, before_id=before_id, limit=limit)
    return [r | {"received_at": iso(r["received_at"])} for r in rows]


async def audit_page(engine: AsyncEngine, *, before_id: int | None = None, limit: int = 50) -> list[dict[str, Any]]:
    """Audit rows newest first."""
    rows = await store.audit_page(engine, before_id=before_id, limit=limit)
    return [r | {"at": iso(r["at"])} for r in rows]
