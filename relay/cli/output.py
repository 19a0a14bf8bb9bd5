"""What every command prints: a failure as one line on stderr, rows as an aligned table."""

from __future__ import annotations

import sys
from typing import Any

from relay.text import one_line


def fail(message: str) -> int:
    """Say why a command failed, on one line of stderr; the exit code for it (2)."""
    print(f"care-relay: {message}", file=sys.stderr)
    return 2


def print_table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    """Rows as an aligned text table (lists joined with commas, None as '-'), each cell on one line.

    Cells hold text senders chose (event ids, names): control and bidi characters are
    taken out so that none can retitle, clear or rewrite the operator's terminal.
    """

    def cell(value: Any) -> str:
        if value is None or value == []:
            return "-"
        if isinstance(value, list):
            return one_line(",".join(str(v) for v in value))
        return one_line(str(value))

    cells = [[cell(r.get(c)) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    print("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
    if not rows:
        print("(none)")
