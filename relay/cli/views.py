"""`care-relay inbox`: the loops, newest first, as a table or JSON."""

from __future__ import annotations

import argparse
import json

from relay import views
from relay.cli.db import run
from relay.cli.output import print_table


def cmd_inbox(args: argparse.Namespace) -> int:
    statuses = ["invited", "acked"] if args.open else []
    rows = run(lambda inbox: views.Views(inbox.reader).inbox_page(statuses=statuses, limit=args.limit))
    for row in rows:
        del row["row"]
    if args.json:
        print(json.dumps(rows, indent=2))  # ASCII: C1 and bidi characters escaped too, not only C0
        return 0
    table = [
        {
            **row,
            "invitations": [f"{i['agent']}/{i['channel'] or '-'}:{i['status']}" for i in row["invitations"]],
        }
        for row in rows
    ]
    print_table(table, ["received_at", "source", "id", "type", "status", "invitations", "acks", "reason"])
    return 0
