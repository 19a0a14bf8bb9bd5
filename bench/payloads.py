"""Pre-signed M3 panic.ui requests, ~1.5 KB each, every one a new event.

A request file has one request a line, `signature<TAB>event type<TAB>body`, which
requests.lua and the paced client (bench.latency) replay. Invited signals come from the
bench subject (which holds a grant) and name one group of the bench directory, so each
invites 1-3 agents; their whisper carries the event id, so the fake Slack can tell which
signal a message is for. Pending signals come from a subject with no grant.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from bench.servers import M3_SECRET, ROOT, WINDOW_SEC
from bench.team import BENCH_ACTOR, GROUPS
from receivers.m3 import signature as m3_signature

PAYLOAD = json.loads((ROOT / "relay" / "demo" / "panic_ui.json").read_text(encoding="utf-8"))
#: what the whisper starts with; the event id follows (bench.fake_slack looks for it).
MARKER = "bench "
NO_GRANT_ACTOR = "nobody-granted"


def body(event_id: str, *, actor: str, group: str, stamp: str, nonce: str | None = None) -> bytes:
    """One panic.ui body as a real sender posts it (~1.5 KB)."""
    payload = dict(PAYLOAD)
    payload["id"] = event_id
    payload["ts"] = stamp
    payload["actor"] = {"id": actor, "display": actor.title()}
    payload["audience"] = {"groups": [group], "targets": []}
    payload["intent"] = {**PAYLOAD["intent"], "whisper": f"{MARKER}{event_id}", "care_window_minutes": 120}
    payload["consent"] = {**PAYLOAD["consent"], "scope": ["panic.ui"]}
    payload["security"] = {**PAYLOAD["security"], "nonce": nonce or uuid.uuid4().hex, "ts_window_sec": WINDOW_SEC}
    payload["context"] = {**PAYLOAD["context"], "note": "x" * 900}  # ~1.5 KB, like real senders
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def write_requests(path: Path, count: int, *, invited: bool, seed: int = 0, groups: Sequence[str] | None = None) -> int:
    """`count` signed requests into `path` (each naming one of `groups`, default every group of
    the bench directory); returns the mean body size in bytes."""
    rng = random.Random(seed)
    now = int(time.time())
    stamp = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    groups = sorted(groups or GROUPS)
    actor = BENCH_ACTOR if invited else NO_GRANT_ACTOR
    total = 0
    with path.open("w", encoding="utf-8") as out:
        for _ in range(count):
            raw = body("evt_" + uuid.uuid4().hex, actor=actor, group=rng.choice(groups), stamp=stamp)
            total += len(raw)
            sig = m3_signature.sign(raw, M3_SECRET, ts=now)["X-M3-Signature"]
            out.write(f"{sig}\tpanic.ui\t{raw.decode()}\n")
    return total // max(count, 1)


def event_ids(path: Path) -> list[str]:
    """The event ids of a request file, in order."""
    with path.open(encoding="utf-8") as lines:
        return [json.loads(line.split("\t", 2)[2])["id"] for line in lines]
