"""The M3 hot path (`m3.parse_fast`) must agree with the ordinary path on every body.

The fast path reads the raw bytes in one pass; the ordinary one is `json.loads`, the
header check's reads and `m3.parse`. The fast path may decline (None) a body, which
then takes the ordinary path; it must never accept a body the ordinary path refuses,
nor read an accepted body differently, and it declines a body that is fine only when
a C JSON parser (orjson) refuses it: non-finite numbers, and a few oddities such as a lone
surrogate escape.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from receivers import m3
from receivers.json_body import parse_json
from receivers.m3 import envelope as m3_envelope
from relay.errors import RelayError
from tests.support import FIXTURES

M3_FIXTURES = sorted((FIXTURES / "m3").glob("*.json"))
GOLDEN = json.loads((FIXTURES / "m3" / "panic.ui__golden.json").read_text("utf-8"))

#: Every place a sender can put something, known or not.
PATHS = [
    "id",
    "type",
    "ts",
    "extra",
    "actor",
    "actor.id",
    "actor.display",
    "audience",
    "audience.groups",
    "audience.targets",
    "intent",
    "intent.why",
    "intent.whisper",
    "intent.suggested_responses",
    "intent.care_window_minutes",
    "consent",
    "consent.mode",
    "consent.scope",
    "consent.expires_at",
    "security",
    "security.nonce",
    "security.ts_window_sec",
    "context",
]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
    | st.sampled_from(["panic.ui", "status.set", "2026-01-07T10:12:00Z", "2026-01-07", "user:ana", " ", "explicit"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=8,
)


def ordinary(body: bytes) -> tuple[dict[str, Any], Any] | None:
    """What the ordinary path makes of a body: the header check's reads and the Signal, or None if refused."""
    try:
        payload = parse_json(body)
        signal = m3.parse(payload)
    except RelayError:
        return None
    security = payload.get("security")
    return {"type": payload["type"], "ts_window_sec": security.get("ts_window_sec") if security else None}, signal


def fast(body: bytes) -> tuple[dict[str, Any], Any] | None:
    result = m3.parse_fast(body)
    if result is None:
        return None
    view, signal = result
    security = view["security"]
    return {"type": view["type"], "ts_window_sec": security["ts_window_sec"] if security else None}, signal


def set_path(payload: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    result = copy.deepcopy(payload)
    *parents, last = path.split(".")
    node: Any = result
    for key in parents:
        if not isinstance(node.get(key), dict):
            node[key] = {}
        node = node[key]
    node[last] = value
    return result


@pytest.mark.parametrize("path", M3_FIXTURES, ids=lambda p: p.stem)
def test_every_fixture_takes_the_fast_path_and_reads_the_same(path: Path) -> None:
    body = path.read_bytes()
    assert fast(body) is not None
    assert fast(body) == ordinary(body)


def test_hex_in_an_id_keeps_the_fast_path() -> None:
    """Event ids and nonces are often hex: a digit before an `e` there is no number."""
    body = json.dumps({**GOLDEN, "id": "evt_4e1f9e2de3c34e5e", "security": {"nonce": "9e99e999"}}).encode()
    assert fast(body) is not None and fast(body) == ordinary(body)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(changes=st.lists(st.tuples(st.sampled_from(PATHS), json_values), min_size=1, max_size=3))
def test_fast_path_agrees_with_the_ordinary_path(changes: list[tuple[str, Any]]) -> None:
    payload = GOLDEN
    for path, value in changes:
        payload = set_path(payload, path, value)
    body = json.dumps(payload).encode()
    expected, got = ordinary(body), fast(body)
    if got is not None:  # never accepts what the ordinary path refuses, nor reads it differently
        assert got == expected
    elif m3_envelope.plain_json(body):
        # declines nothing that is fine, but for bodies with numbers that overflow to infinity, NaN and the like
        assert expected is None


@pytest.mark.parametrize(
    "body",
    [
        b'{"id": 1, "context": NaN}',
        json.dumps({**GOLDEN, "context": float("nan")}).encode(),
        json.dumps({**GOLDEN, "context": float("inf")}).encode(),
        json.dumps(GOLDEN).encode()[:-1] + b', "extra": 1e999999}',
        json.dumps(GOLDEN).encode()[:-1] + b', "extra": [0, -' + b"9" * 400 + b".5]}",
        json.dumps({**GOLDEN, "type": "panic.other"}).encode(),
        json.dumps(GOLDEN).encode()[:-1],
        b"\xef\xbb\xbf" + json.dumps(GOLDEN).encode(),
        json.dumps([GOLDEN]).encode(),
    ],
    ids=[
        "nan-literal",
        "nan",
        "infinity",
        "overflowing-number",
        "overflowing-digits",
        "unknown-type",
        "truncated",
        "bom",
        "array",
    ],
)
def test_bodies_the_fast_path_declines(body: bytes) -> None:
    """Non-finite constants, unknown types and broken JSON go to the ordinary path, which words the error."""
    assert m3.parse_fast(body) is None
    assert ordinary(body) is None
