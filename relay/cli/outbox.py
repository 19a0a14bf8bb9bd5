"""`care-relay outbox`: work not yet done (pending, being sent, failed), and retrying what failed.

Both go through `relay.deliveries`, the service the admin API uses: the same checks, the
same audit row. A running server takes a retried row at its next poll (within a second).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from inbox import Inbox
from relay.cli.db import run
from relay.cli.output import fail, print_table
from relay.cli.problems import explain
from relay.deliveries import Deliveries
from relay.errors import RelayError
from relay.text import one_line

COLUMNS = [
    "id",
    "kind",
    "status",
    "attempts",
    "next_attempt_at",
    "event_id",
    "source",
    "agent",
    "channel",
    "last_error",
    "updated_at",
]


def _comma(value: str | None) -> list[str]:
    return [part for part in (value or "").split(",") if part.strip()]


def _deliveries(inbox: Inbox) -> Deliveries:
    """The service over the CLI's own connection; a server elsewhere picks retried rows up by polling."""
    return Deliveries(inbox.writer, inbox.reader, clock=time.time, on_queued=lambda: None)


def cmd_outbox(args: argparse.Namespace) -> int:
    rows = run(
        lambda inbox: _deliveries(inbox).page(statuses=_comma(args.status), kinds=_comma(args.kind), limit=args.limit)
    )
    for row in rows:
        del row["row"]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print_table(rows, COLUMNS)
    return 0


def cmd_outbox_retry(args: argparse.Namespace) -> int:
    if bool(args.ids) == bool(args.failed):
        return fail("name the rows to retry (their ids) or give --failed, not both")
    if args.ids and args.kind:
        return fail("--kind goes with --failed; to retry rows by id, name only the ids")

    async def retry(inbox: Inbox) -> tuple[list[dict[str, Any]], list[str]]:
        deliveries = _deliveries(inbox)
        if args.failed:
            return await deliveries.retry_failed(args.by, kinds=_comma(args.kind)), []
        done, problems = [], []
        for key in args.ids:
            try:
                done.append(await deliveries.retry(key, args.by))
            except RelayError as exc:
                problems.append(explain(exc))
        return done, problems

    retried, problems = run(retry)
    for row in retried:
        about = one_line(f"{row['source']} {row['event_id']}") if row["event_id"] else "-"
        print(f"retried outbox row {row['id']} ({row['kind']}, {about}): due now, with a fresh attempt budget")
    if args.failed and not retried:
        print("nothing has failed: no row to retry")
    for problem in problems:
        print(f"care-relay: {problem}", file=sys.stderr)
    return 2 if problems else 0
