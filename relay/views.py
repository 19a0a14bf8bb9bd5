"""Read-only views of the inbox: one loop's status for its sender, and for operators the
loops newest first and the audit trail.

Each item is in the contract's names with times as ISO 8601; `row` is the storage row id
a page's cursor is made from (the edge drops it before answering).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from inbox import audit, signals
from inbox.loop_detail import InvitationLine, LoopDetail, loop_detail
from inbox.reader import Reader
from inbox.signals import StoredSignal
from inbox.tx import Tx
from receivers import SENDERS
from relay.errors import BadRequestError, NotFoundError
from relay.model import iso

_SOURCE_QUERIES = " or ".join(f"?source={name}" for name in SENDERS)


@dataclass(frozen=True)
class _Loop:
    """What the status document shows of one loop besides its signal row."""

    detail: LoopDetail
    #: the signals that joined it (CONTRACT section 10)
    joined: list[signals.JoinedLine]
    #: status `joined`: the event id of the loop it joined
    joined_to: str | None


def _find(tx: Tx, event_id: str, source: str | None) -> tuple[list[StoredSignal], _Loop | None]:
    """The signals under this id and, when it names one, its loop: one read job."""
    found = signals.find_signals(tx, event_id, source)
    if len(found) != 1:
        return found, None
    signal = found[0]
    joined_to = None if signal.joined_to is None else signals.event_id_of(tx, signal.joined_to)
    return found, _Loop(loop_detail(tx, signal.id), signals.joined_to_loop(tx, signal.id), joined_to)


def _invitation(line: InvitationLine) -> dict[str, Any]:
    shown: dict[str, Any] = {"agent": line.agent, "channel": line.channel or None, "status": line.status}
    if line.invited_by:  # a person asked for it (invite now): who
        shown["invited_by"] = line.invited_by
    return shown


def _describe(signal: StoredSignal, loop: _Loop) -> dict[str, Any]:
    detail = loop.detail
    done = detail.done
    joined_to = {"joined_to": loop.joined_to} if loop.joined_to is not None else {}
    return {
        "id": signal.event_id,
        "source": signal.source,
        "type": signal.type,
        "status": signal.status,
        "received_at": iso(signal.received_at),
        "decision": {
            "reason": signal.reason,
            "gates": signal.gate_failures,
            "action_origin": signal.action_origin,
            "policy_gate_result": signal.policy_gate_result,
            "origin_uncertain": signal.origin_uncertain,
        },
        **joined_to,
        "invitations": [_invitation(i) for i in detail.invitations],
        "acks": [
            {
                "type": "care.ack",
                "ts": iso(a.at),
                "for": signal.event_id,
                "by": {"id": a.agent, "display": a.display},
                "action": a.action,
            }
            for a in detail.acks
        ],
        "done": None
        if done is None
        else {
            "type": "care.done",
            "ts": iso(done.at),
            "for": signal.event_id,
            "by": {"id": done.agent, "display": done.display},
            "outcome": done.outcome,
            "note": done.note,
        },
        "joined": [{"id": j.event_id, "type": j.type, "ts": iso(j.received_at)} for j in loop.joined],
        "passes": [{"by": {"id": p.agent, "display": p.display}, "ts": iso(p.at)} for p in detail.passes],
    }


class Views:
    """The read-only views over one database."""

    def __init__(self, reader: Reader) -> None:
        self._reader = reader

    async def event_status(self, event_id: str, source: str | None = None) -> dict[str, Any]:
        """The contract's view of the loop of one event (of one source, when given).

        404 when no event has this id; 400 when two sources used it and none was named.
        """
        found, detail = await self._reader.run(_find, event_id, source)
        if not found:
            raise NotFoundError("No event with this id was received.")
        if detail is None:
            raise BadRequestError(f"Two sources used this id; add {_SOURCE_QUERIES}.")
        return _describe(found[0], detail)

    async def inbox_page(
        self, *, statuses: Sequence[str] = (), before_id: int | None = None, limit: int = 50, answers: bool = False
    ) -> list[dict[str, Any]]:
        """Loops newest first (of the given statuses), with their invitations and ack count;
        with `answers`, also who answered with which response (`answers`: the console's column)."""
        rows = await self._reader.run(signals.inbox_page, statuses=statuses, before_id=before_id, limit=limit)
        return [
            {k: v for k, v in r.items() if answers or k != "answers"} | {"received_at": iso(r["received_at"])}
            for r in rows
        ]

    async def audit_page(
        self, *, before_id: int | None = None, limit: int = 50, kinds: Sequence[str] = ()
    ) -> list[dict[str, Any]]:
        """Audit rows newest first (of these kinds, when named)."""
        rows = await self._reader.run(audit.audit_page, before_id=before_id, limit=limit, kinds=kinds)
        return [r | {"at": iso(r["at"])} for r in rows]
