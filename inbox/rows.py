"""What every storage module shares: IN-list marks, the one JSON encoder, tolerant list
reads, and name access on records for callers that still read rows by column name."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any


def marks(count: int) -> str:
    """`?, ?, ?` for an IN list of `count` values."""
    return ", ".join("?" * count)


#: one encoder for every row: json.dumps with options builds a new one per call
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=str)


def dumps(value: Any) -> str:
    """A value as the compact JSON text a column stores."""
    return _ENCODER.encode(value)


def dumps_list(values: Sequence[str]) -> str:
    """The hot path's lists (gate failures) are usually empty: skip the encoder then."""
    return dumps(list(values)) if values else "[]"


def strings(text: Any) -> tuple[str, ...]:
    """A stored JSON list of strings; anything else (a row written by hand) reads as empty."""
    return strings_or_none(text) or ()


def strings_or_none(text: Any) -> tuple[str, ...] | None:
    """A stored JSON list of strings, or None when the row holds something else."""
    try:
        value = json.loads(text)
    except (TypeError, ValueError, RecursionError):
        return None
    return tuple(value) if isinstance(value, list) and all(isinstance(v, str) for v in value) else None
