"""JSON as the senders' wire carries it: a strict reader and the compact writer.

Pure: the reader refuses what JSON itself has no room for (NaN, Infinity, a number that
overflows to either), so that what the relay stores can be read back by anyone.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from relay.errors import MalformedJsonError


def _reject_constant(name: str) -> Any:
    raise ValueError(name)


def _finite_float(text: str) -> float:
    # JSON has no infinity: `1e999` would otherwise read as one, while `Infinity` is refused.
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("number out of range")
    return value


def loads(text: str | bytes) -> Any:
    """Strict JSON: UTF-8, no NaN or Infinity, no number that overflows to either."""
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    return json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)


def parse_json(body: bytes) -> Any:
    """`loads` for a request body: anything unreadable is the contract's 400 `malformed_json`."""
    try:
        return loads(body)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise MalformedJsonError() from None


def dumps(fields: Mapping[str, Any]) -> bytes:
    """Compact UTF-8 JSON, the form the relay signs and sends."""
    return json.dumps(fields, separators=(",", ":"), ensure_ascii=False).encode()
