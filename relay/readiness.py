"""Whether this process can take traffic: the last write committed, the database answers,
the schema is current. It reports; it never raises."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from inbox import db
from inbox.writer import Writer
from relay.model import iso

log = logging.getLogger("care_relay.readiness")


@dataclass(frozen=True)
class Readiness:
    ok: bool
    #: "ready", "writes failing", "unreachable" or "migrations pending"
    database: str
    #: what an operator can do about it, when not ready
    detail: str | None = None


async def check(writer: Writer, engine: AsyncEngine) -> Readiness:
    """The outbox worker's claim is a write every second, so this follows storage even while
    no request comes in."""
    failing = writer.failing
    if failing is not None:
        return Readiness(
            False,
            "writes failing",
            f"Writes to the database fail since {iso(failing.since_ms)} ({failing.error}); "
            "check its disk, permissions and locks. Ready again once a write commits.",
        )
    try:
        current = await db.migrations_current(engine)
    except Exception as exc:  # readiness reports, it never raises
        log.warning("readiness check failed: %s", type(exc).__name__)
        return Readiness(False, "unreachable", "The database does not answer; retry shortly.")
    if not current:
        return Readiness(False, "migrations pending", "The database schema is behind; run `care-relay db upgrade`.")
    return Readiness(True, "ready")
