"""Failed work, visible and redoable (CONTRACT section 6): the admin API's and the CLI's one service.

`page` lists outbox rows that are pending, being sent or failed, newest first; `retry`
makes one failed row due now with a fresh attempt budget (audited `outbox_retry`,
`user_directed`, with who asked). A retried invitation goes back to `queued` and meets the
send-time checks again when the outbox takes it: a retry never bypasses consent.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from inbox.deliveries import OutboxLine, failed_ids, outbox_counts, outbox_of_signal, outbox_page, retry_failed
from inbox.reader import Reader
from inbox.signals import find_signals
from inbox.tx import Tx
from inbox.writer import Writer
from relay import audit
from relay.errors import BadRequestError, NotFailedError, NotFoundError
from relay.forms import checked_by
from relay.metrics import OutboxFigure
from relay.model import Clock, iso, millis

#: the statuses a listing may ask for (sent and skipped work is history, in the audit trail)
OUTBOX_STATUSES = ("failed", "pending", "sending")
#: "verify": a join code to an address its owner has not confirmed (CONTRACT section 8);
#: "directed_invite": an invitation a person asked for (invite now, CONTRACT section 10)
OUTBOX_KINDS = ("invite", "update", "callback", "forward", "verify", "directed_invite")
#: the largest row id storage can hold
_MAX_ID = 2**63 - 1


def checked(values: Sequence[str], allowed: Sequence[str], what: str) -> tuple[str, ...]:
    """The values asked for (all of `allowed` when none), each one of `allowed`, or a 400 that lists them."""
    asked = tuple(dict.fromkeys(v.strip() for v in values if v.strip()))
    for value in asked:
        if value not in allowed:
            shown = value if value.isprintable() and len(value) <= 40 else "that value"
            raise BadRequestError(f"Unknown {what} '{shown}'; use one of: {', '.join(allowed)}.")
    return asked or tuple(allowed)


def outbox_id(value: str | int) -> int:
    """A row id as given in a path or on the command line; 404 when it cannot name a row."""
    text = str(value).strip()
    if not (text.isascii() and text.isdigit()) or not 0 < int(text) <= _MAX_ID:
        raise NotFoundError(f"No outbox row '{text[:40] if text.isprintable() else '?'}'; use an id from the listing.")
    return int(text)


def line_view(line: OutboxLine) -> dict[str, Any]:
    """A row in the contract's names, instants as ISO 8601 (no next attempt once settled or failed)."""
    waiting = line.status in ("pending", "sending")
    return {
        "id": line.id,
        "kind": line.kind,
        "status": line.status,
        "attempts": line.attempts,
        "next_attempt_at": iso(line.next_attempt_at) if waiting else None,
        "last_error": line.last_error,
        "event_id": line.event_id,
        "source": line.source,
        "agent": line.agent,
        "channel": line.channel,
        "created_at": iso(line.created_at),
        "updated_at": iso(line.updated_at),
    }


class Deliveries:
    """The outbox as an operator reads and redoes it, over one database."""

    def __init__(self, writer: Writer, reader: Reader, *, clock: Clock, on_queued: Callable[[], None]) -> None:
        self._writer = writer
        self._reader = reader
        self._clock = clock
        self._on_queued = on_queued

    async def page(
        self,
        *,
        statuses: Sequence[str] = (),
        kinds: Sequence[str] = (),
        before_id: int | None = None,
        limit: int = 50,
    ) -> list[dict[str, Any]]:
        """Rows of these statuses and kinds (all listed ones when none given), newest first,
        each with its cursor position in `row`; 400 for a status or kind the listing does not know."""
        wanted = checked(statuses, OUTBOX_STATUSES, "status")
        of_kinds = checked(kinds, OUTBOX_KINDS, "kind")
        lines = await self._reader.run(outbox_page, statuses=wanted, kinds=of_kinds, before_id=before_id, limit=limit)
        return [line_view(line) | {"row": line.id} for line in lines]

    async def of_loop(self, event_id: str, source: str) -> list[dict[str, Any]]:
        """Every outbox row of one loop (sent and skipped ones too), oldest first; [] for no such loop."""

        def job(tx: Tx) -> list[OutboxLine]:
            found = find_signals(tx, event_id, source)
            return outbox_of_signal(tx, found[0].id) if len(found) == 1 else []

        return [line_view(line) for line in await self._reader.run(job)]

    async def outbox_figures(self) -> list[OutboxFigure]:
        """How many rows of each kind are pending, sending and failed, and when the earliest pending one came due."""
        counted = await self._reader.run(outbox_counts, statuses=OUTBOX_STATUSES)
        return [
            OutboxFigure(kind, status, rows, due if status == "pending" else None)
            for kind, status, rows, due in counted
        ]

    async def retry(self, work_id: str | int, by: str) -> dict[str, Any]:
        """Make one failed row due now with a fresh attempt budget; 404 unknown, 409 `not_failed`."""
        key, by = outbox_id(work_id), checked_by(by)
        line, retried = await self._writer.run(lambda tx: retry_failed(tx, key, by=by, now=millis(self._clock)))
        if line is None:
            raise NotFoundError(f"No outbox row {key}; use an id from the listing.")
        if not retried:
            raise NotFailedError(
                f"Outbox row {key} is {line.status}, not failed; only failed work can be retried"
                " (pending and sending work is still being tried)."
            )
        self._on_queued()
        audit.emit(
            {
                "kind": "outbox_retry",
                "outbox": line.id,
                "what": line.kind,
                "event_id": line.event_id,
                "action_origin": "user_directed",
                "policy_gate_result": "allowed",
                "reason": "a person asked for failed work to be tried again",
            }
        )
        return line_view(line)

    async def retry_failed(self, by: str, *, kinds: Sequence[str] = ()) -> list[dict[str, Any]]:
        """Retry every failed row (of these kinds); the rows retried. A row retried by someone else meanwhile is left out."""
        by, of_kinds = checked_by(by), checked(kinds, OUTBOX_KINDS, "kind")
        retried = []
        for key in await self._reader.run(failed_ids, kinds=of_kinds):
            try:
                retried.append(await self.retry(key, by))
            except (NotFailedError, NotFoundError):
                continue
        return retried
