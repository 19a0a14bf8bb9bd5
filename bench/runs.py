"""The measurements: each starts its own servers, warms them up on requests of their own, and returns figures.

A request file is signed once per bench run and replayed against fresh databases (every
measured request a new event there). CPU is the server's own (all threads, /proc), per
request or per invited signal; the invited path's CPU counts the outbox's sending too:
it is read after the outbox has settled what the run queued.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
import urllib.request
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import seed, servers
from bench.payloads import event_ids, write_requests
from bench.servers import Server, run_wrk

WARMUP_SECONDS = 2
#: invited warm-up: enough to load every code path, little enough for the outbox to drain soon.
WARMUP_SIGNALS = 300


@dataclass
class Bench:
    work: Path
    cache: Path
    seconds: float
    connections: int
    #: how long the outbox may take to settle a run's invitations before the figures are read anyway
    drain: float

    def requests(self, name: str, count: int, *, invited: bool, groups: Sequence[str] | None = None) -> Path:
        """A request file of `count` new events, signed once per bench run (again when near the signature window's end)."""
        path = self.work / f"{name}.tsv"
        if not path.exists() or time.time() - path.stat().st_mtime > servers.WINDOW_SEC / 2:
            write_requests(path, count, invited=invited, seed=zlib.crc32(name.encode()), groups=groups)
        return path

    def log(self, name: str) -> Path:
        return self.work / f"{name}.log"


def drive(server: Server, requests: Path, seconds: float, connections: int, limit: int | None = None) -> dict[str, Any]:
    return run_wrk(server.url, "requests.lua", [str(requests)], seconds=seconds, connections=connections, limit=limit)


def _throughput(bench: Bench, server: Server, measured: Path, warmup: Path) -> dict[str, Any]:
    drive(server, warmup, WARMUP_SECONDS, bench.connections)
    cpu = server.cpu()
    result = drive(server, measured, bench.seconds, bench.connections)
    result["cpu_us"] = (server.cpu() - cpu) / max(result["requests"], 1) * 1e6
    result["rss_mb"] = server.rss()
    return result


def plain_requests(bench: Bench) -> tuple[Path, Path]:
    count = max(20_000, int(bench.seconds * 4000))
    return bench.requests("pending", count, invited=False), bench.requests("pending-warm", 20_000, invited=False)


def bare_path(bench: Bench) -> dict[str, Any]:
    """The bare aiohttp handler on the pending path's bodies."""
    with servers.bare(bench.log("bare")) as server:
        return _throughput(bench, server, *plain_requests(bench))


def pending_path(bench: Bench) -> dict[str, Any]:
    """Signals with no grant: verified, parsed, decided pending_consent, committed with their audit row."""
    database = bench.work / "pending.db"
    seed.inbox_copy(bench.cache, 0, database)
    with servers.relay(database, log=bench.log("relay-pending")) as server:
        return _throughput(bench, server, *plain_requests(bench))


def arrivals(fake: Server) -> dict[str, Any]:
    with urllib.request.urlopen(fake.url + "/bench/arrivals") as answer:  # noqa: S310 (our own fake, on loopback)
        data: dict[str, Any] = json.load(answer)
    return data


def drain(database: Path, within: float) -> tuple[float, int]:
    """Wait (up to `within` s) for the outbox to settle every queued invitation: (seconds, left unsettled)."""
    started = time.monotonic()
    left = seed.unsettled_invites(database)
    while left and time.monotonic() - started < within:
        time.sleep(0.25)
        left = seed.unsettled_invites(database)
    return time.monotonic() - started, left


def invited_requests(bench: Bench) -> tuple[Path, Path]:
    """The invited path's measured requests and its warm-up's."""
    measured = bench.requests("invited", max(10_000, int(bench.seconds * 2500)), invited=True)
    return measured, bench.requests("invited-warm", WARMUP_SIGNALS, invited=True)


def warm_up_invited(bench: Bench, server: Server, warmup: Path, database: Path) -> None:
    """The warm-up's signals, and the outbox given time to send their invitations."""
    drive(server, warmup, 5, bench.connections, limit=WARMUP_SIGNALS)
    drain(database, bench.drain)


def invited_path(bench: Bench, database: Path, name: str = "invited") -> dict[str, Any]:
    """Signals a grant covers: each invites 1-3 agents on Slack, sent by the outbox to the fake."""
    measured, warmup = invited_requests(bench)
    with (
        servers.fake_slack(bench.log(f"fake-{name}")) as fake,
        servers.relay(database, fake.url, log=bench.log(f"relay-{name}")) as server,
    ):
        warm_up_invited(bench, server, warmup, database)
        cpu = server.cpu()
        result: dict[str, Any] = drive(server, measured, bench.seconds, bench.connections)
        window = server.cpu() - cpu
        result["drain_s"], result["unsettled"] = drain(database, bench.drain)
        total = server.cpu() - cpu
        result["rss_mb"] = server.rss()
        seen = arrivals(fake)
    ids = event_ids(measured)
    loops = seed.loops_of(database, ids)
    statuses = [s for _, invitations in loops.values() for s in invitations]
    signals = len(loops)
    wanted = set(ids)
    result.update(
        signals=signals,
        replayed=result["requests"] > len(ids),
        signal_statuses=dict(sorted(_count(status for status, _ in loops.values()).items())),
        invitations=len(statuses),
        invitation_statuses=dict(sorted(_count(statuses).items())),
        per_signal=len(statuses) / max(signals, 1),
        at_fake=sum(1 for event, _ in seen["arrivals"] if event in wanted),
        cpu_intake_us=window / max(signals, 1) * 1e6,
        cpu_us=total / max(signals, 1) * 1e6,
    )
    result["drain_rate"] = len(statuses) / result["drain_s"] if result["drain_s"] > 0.5 else None
    return result


def _count(values: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    return counts


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100), nearest rank; inf counts as larger than everything."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


def latency(bench: Bench, rate: float, seconds: float, grace: float = 2.0) -> dict[str, Any]:
    """202 → provider call per invitation, at a steady `rate` of invited signals from an open-loop client."""
    warm = 3.0
    requests = bench.requests(f"paced-{rate:g}", int(rate * (seconds + warm)) + 10, invited=True)
    database = bench.work / "latency.db"
    seed.inbox_copy(bench.cache, 0, database)
    out = bench.work / "paced.json"
    with (
        servers.fake_slack(bench.log("fake-latency")) as fake,
        servers.relay(database, fake.url, log=bench.log("relay-latency")) as server,
    ):
        cpu = server.cpu()
        command = [sys.executable, "-m", "bench.latency", server.url, str(requests), f"{rate:g}", f"{seconds:g}"]
        subprocess.run([*command, f"{warm:g}", str(out)], check=True, cwd=servers.ROOT)
        time.sleep(grace)
        within_run = arrivals(fake)["arrivals"]
        cpu_s = server.cpu() - cpu
        drain(database, bench.drain)
        late = arrivals(fake)["arrivals"]
    records = json.loads(out.read_text())
    answered = {r[0]: r[3] for r in records if r[4] == 202}
    expected = {e: len(inv) for e, (_, inv) in seed.loops_of(database, list(answered)).items()}
    delays = [t - answered[e] for e, t in within_run if e in answered]
    missing = sum(expected.values()) - len(delays)
    with_missing = [d * 1000 for d in delays] + [float("inf")] * max(missing, 0)
    accepted = [(r[3] - r[1]) * 1000 for r in records]
    sent_late = [(r[2] - r[1]) * 1000 for r in records]
    return {
        "rate": rate,
        "seconds": seconds,
        "signals": len(records),
        "non202": sum(1 for r in records if r[4] != 202),
        "invitations": sum(expected.values()),
        "per_signal": sum(expected.values()) / max(len(expected), 1),
        "arrived_in_run": len(delays),
        "missing_in_run": missing,
        "arrived_late": sum(1 for e, _ in late if e in answered) - len(delays),
        "p50_ms": percentile(with_missing, 50),
        "p95_ms": percentile(with_missing, 95),
        "p99_ms": percentile(with_missing, 99),
        "accept_p50_ms": percentile(accepted, 50),
        "accept_p99_ms": percentile(accepted, 99),
        "client_lag_p99_ms": percentile(sent_late, 99),
        "cpu_us": cpu_s / max(len(records), 1) * 1e6,
        "cpu_share": cpu_s / (seconds + grace),
    }


def lookups(bench: Bench, database: Path) -> dict[str, Any]:
    """Status reads by random seeded ids, and inbox pages, with the admin bearer, at 1 and 8 connections."""
    ids = seed.sample_event_ids(database, 2000)
    statuses = bench.work / "status-paths.txt"
    statuses.write_text("".join(f"/v1/events/{e}\n" for e in ids))
    pages = bench.work / "inbox-paths.txt"
    pages.write_text("/admin/inbox\n/admin/inbox?status=invited,acked\n")
    results: dict[str, Any] = {}
    with servers.relay(database, log=bench.log("relay-lookups")) as server:
        for name, paths in (("status", statuses), ("inbox", pages)):
            for connections in (1, 8):
                args = [str(paths), servers.ADMIN_TOKEN]
                run_wrk(server.url, "lookups.lua", args, seconds=1, connections=connections)
                cpu = server.cpu()
                result = run_wrk(server.url, "lookups.lua", args, seconds=bench.seconds, connections=connections)
                result["cpu_us"] = (server.cpu() - cpu) / max(result["requests"], 1) * 1e6
                results[f"{name}_c{connections}"] = result
        results["rss_mb"] = server.rss()
    return results


def peak_rss(bench: Bench, signals: int) -> dict[str, Any]:
    """VmHWM after `signals` invited signals (and the outbox's sending of them, as far as `drain` allows)."""
    requests = bench.requests(f"rss-{signals}", signals, invited=True)
    database = bench.work / "rss.db"
    seed.inbox_copy(bench.cache, 0, database)
    with (
        servers.fake_slack(bench.log("fake-rss")) as fake,
        servers.relay(database, fake.url, log=bench.log("relay-rss")) as server,
    ):
        result = drive(server, requests, 3600, bench.connections, limit=signals)
        result["rss_after_intake_mb"] = server.rss()
        result["drain_s"], result["unsettled"] = drain(database, bench.drain)
        result["rss_mb"] = server.rss()
        result["at_fake"] = arrivals(fake)["counts"].get("chat.postMessage", 0)
    result["signals"] = seed.signal_count(database)  # fewer than asked when wrk was stopped early
    return result


def median_of(runs: list[dict[str, Any]], key: str) -> float:
    return statistics.median(r[key] for r in runs)
