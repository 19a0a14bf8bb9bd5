"""Where a served relay's CPU goes: `make profile` (`python -m bench.profile [--path pending,invited] [--seconds S]`).

The relay runs as `make bench` runs it (its own process, production settings, a SQLite
file; on the invited path the outbox sends to the local fake Slack), is warmed up on
requests of its own, and is then sampled by py-spy (without pausing it) while wrk drives
the measured requests. Only samples where a thread was running count, so the shares are
shares of the relay's CPU, on every thread (the event loop and the SQLite writer's).

Two tables per path:
  self time    each sample charged to the code it was in (its innermost frame), by area:
               what the CPU was spent doing
  inclusive    the share of samples with a product module anywhere on the stack: how much of
               the CPU a stage of the relay accounts for, with everything it called

The raw collapsed stacks are kept beside the JSON (any flame-graph tool reads them).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import runs, seed, servers
from bench.servers import Server

#: samples a second; py-spy's default is 100
RATE = 250
PATHS = ("pending", "invited")

#: (area, pattern on the innermost frame's file): the first that matches names the area
AREAS: tuple[tuple[str, str], ...] = (
    ("HTTP server and client (aiohttp, multidict, yarl)", r"/(aiohttp|multidict|yarl|aiosignal|frozenlist)/"),
    ("event loop (asyncio, uvloop)", r"/(asyncio|uvloop)/|selectors\.py"),
    ("Slack SDK (slack_sdk, slack_bolt)", r"/slack_(sdk|bolt)/"),
    ("storage: SQLite and its statements (inbox/)", r"/inbox/|/sqlite3/"),
    ("logging (relay/logs.py, logging)", r"/relay/logs\.py|/logging/"),
    ("senders: signatures, parsing (receivers/)", r"/receivers/"),
    ("JSON and validation (json, orjson, pydantic)", r"/(json|orjson|pydantic|pydantic_core)/"),
    ("HMAC and hashing", r"/(hmac|hashlib)\.py"),
    ("relay: intake, routing, outbox, words (relay/)", r"/relay/"),
    ("threads and futures (the writer's hand-offs)", r"/(threading|concurrent)"),
)
OTHER = "other (stdlib, interpreter)"

#: stages, by product module on the stack (inclusive)
STAGES: tuple[tuple[str, str], ...] = (
    ("the webhook handler (relay/web/hooks.py)", r"/relay/web/hooks\.py"),
    ("intake: decide, route, store (relay/intake*.py)", r"/relay/intake"),
    ("routing (relay/router*.py)", r"/relay/rout"),
    ("the SQLite writer (inbox/writer.py)", r"/inbox/writer\.py"),
    ("the outbox (relay/outbox*.py)", r"/relay/outbox"),
    ("Slack sends (relay/channels/slack/)", r"/relay/channels/slack/"),
    ("the request log line (relay/logs.py)", r"/relay/logs\.py"),
    ("middlewares (relay/web/middlewares.py)", r"/relay/web/middlewares\.py"),
)

_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^():]*)(?::\d+)?\)$")


def parse_raw(text: str) -> list[tuple[list[str], int]]:
    """py-spy's raw (collapsed) output: one line per distinct stack, frames by ';', then a count."""
    stacks = []
    for line in text.splitlines():
        head, _, count = line.rpartition(" ")
        if not head or not count.isdigit():
            continue
        frames = [f for f in head.split(";") if not f.startswith(("thread (", "process "))]
        stacks.append((frames, int(count)))
    return stacks


def _file(frame: str) -> str:
    match = _FRAME.match(frame)
    return match.group("file") if match else frame


def attribute(stacks: list[tuple[list[str], int]]) -> dict[str, Any]:
    """Self time by area, inclusive time by stage, and the busiest innermost functions."""
    total = sum(count for _, count in stacks)
    areas: Counter[str] = Counter()
    stages: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    for frames, count in stacks:
        leaf = frames[-1] if frames else ""
        leaf_file = "/" + _file(leaf)
        area = next((name for name, pattern in AREAS if re.search(pattern, leaf_file)), OTHER)
        areas[area] += count
        leaves[re.sub(r":\d+\)$", ")", leaf) or "(native code, no Python frame)"] += count
        files = {"/" + _file(f) for f in frames}
        for name, pattern in STAGES:
            if any(re.search(pattern, f) for f in files):
                stages[name] += count

    def shares(counter: Counter[str]) -> list[tuple[str, float]]:
        return [(name, round(100 * n / max(total, 1), 1)) for name, n in counter.most_common()]

    return {
        "samples": total,
        "self_by_area": shares(areas),
        "inclusive_by_stage": shares(stages),
        "top_functions": shares(Counter(dict(leaves.most_common(15)))),
    }


def py_spy() -> str | None:
    """The py-spy beside this interpreter (`make profile` installs it there), else one on PATH."""
    beside = servers.BIN / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


def _record(pid: int, seconds: float, out: Path) -> subprocess.Popen[bytes]:
    command = [
        py_spy() or "py-spy",
        "record",
        "--pid",
        str(pid),
        "--format",
        "raw",
        "--rate",
        str(RATE),
        "--duration",
        str(max(1, round(seconds))),
        "--nonblocking",
        "--threads",
        "--output",
        str(out),
    ]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _sampled(server: Server, requests: Path, seconds: float, connections: int, out: Path) -> dict[str, Any]:
    """wrk on `requests` while py-spy samples the relay; wrk's figures and the attribution."""
    cpu = server.cpu()
    spy = _record(server.pid, seconds, out)
    time.sleep(0.3)  # py-spy attaches before the measured requests start
    result = runs.drive(server, requests, seconds, connections)
    _, err = spy.communicate(timeout=seconds + 60)
    if spy.returncode:
        raise SystemExit(f"py-spy failed: {err.decode(errors='replace')[-400:]}")
    result["cpu_us"] = (server.cpu() - cpu) / max(result["requests"], 1) * 1e6
    return {"wrk": result, **attribute(parse_raw(out.read_text()))}


def profile_pending(bench: runs.Bench) -> dict[str, Any]:
    database = bench.work / "profile-pending.db"
    seed.inbox_copy(bench.cache, 0, database)
    measured, warmup = runs.plain_requests(bench)
    with servers.relay(database, log=bench.log("relay-profile-pending")) as server:
        runs.drive(server, warmup, runs.WARMUP_SECONDS, bench.connections)
        return _sampled(server, measured, bench.seconds, bench.connections, bench.work / "pending.collapsed")


def profile_invited(bench: runs.Bench) -> dict[str, Any]:
    database = bench.work / "profile-invited.db"
    seed.inbox_copy(bench.cache, 0, database)
    measured, warmup = runs.invited_requests(bench)
    with (
        servers.fake_slack(bench.log("fake-profile")) as fake,
        servers.relay(database, fake.url, log=bench.log("relay-profile-invited")) as server,
    ):
        runs.warm_up_invited(bench, server, warmup, database)
        return _sampled(server, measured, bench.seconds, bench.connections, bench.work / "invited.collapsed")


def print_profile(name: str, result: dict[str, Any]) -> None:
    wrk = result["wrk"]
    print(f"\n== {name}: {wrk['rps']:,.0f} req/s, {wrk['cpu_us']:,.0f} µs CPU a request, {result['samples']} samples")
    for title, key in (("self time, by area", "self_by_area"), ("inclusive, by stage", "inclusive_by_stage")):
        print(f"  {title}:")
        for label, share in result[key]:
            print(f"    {share:5.1f} %  {label}")
    print("  busiest innermost functions:")
    for label, share in result["top_functions"][:10]:
        print(f"    {share:5.1f} %  {label}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--path", default=",".join(PATHS), help="comma-separated among pending,invited")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--drain", type=float, default=60)
    parser.add_argument("--work", type=Path, default=servers.ROOT / "var" / "bench")
    args = parser.parse_args()
    paths = [p.strip() for p in args.path.split(",") if p.strip()]
    if set(paths) - set(PATHS):
        parser.error(f"--path takes {', '.join(PATHS)}")
    if not shutil.which("wrk") or not py_spy():
        raise SystemExit("wrk and py-spy are needed: `make profile` installs both")
    args.work.mkdir(parents=True, exist_ok=True)
    run_dir = Path(tempfile.mkdtemp(prefix="profile-", dir=args.work))
    bench = runs.Bench(run_dir, args.work / "cache", args.seconds, args.connections, args.drain)
    results: dict[str, Any] = {"date": datetime.now(UTC).isoformat(timespec="seconds"), "rate_hz": RATE}
    for name in paths:
        results[name] = profile_pending(bench) if name == "pending" else profile_invited(bench)
        print_profile(name, results[name])
    out = run_dir / "profile.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    for scratch in (*run_dir.glob("*.db*"), *run_dir.glob("*.tsv")):
        scratch.unlink()
    print(f"\nJSON: {out}; collapsed stacks beside it")


if __name__ == "__main__":
    sys.exit(main())
