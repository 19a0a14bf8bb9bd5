"""care-relay's benchmark: `python -m bench [--only MODES] [--seconds S] [--sizes N,N,N] [--json PATH]` (`make bench`).

Modes (all by default):
  invited   the invited path (50 agents on Slack in groups, one grant, 1-3 invitations a
            signal, the outbox sending to a local fake Slack) beside a bare aiohttp handler
  pending   signals with no grant (pending_consent), beside the bare handler
  latency   an open-loop client at a fixed rate of invited signals: 202 → Slack call per invitation
  growth    the invited path against inboxes of --sizes stored signals (seeded, cached)
  lookups   GET /v1/events/{id} and GET /admin/inbox on the largest inbox, at 1 and 8 connections
  rss       peak RSS (VmHWM) after --rss-signals invited signals
  replicas  PostgreSQL: intake requests/s and CPU per request with one relay and with two
            (pending and invited paths), each on a scratch database; what the sessions wait on
  restart   PostgreSQL: kill -9 one relay under invited load, start it again, time to the last
            invitation redelivered
(replicas and restart need --postgres URL or TEST_POSTGRES_URL; skipped without.)

Every server is its own process; warm-ups use requests of their own. The relay runs as in
production (no --dev) on SQLite, except that RELAY_AGENT_MAX_INVITES_PER_HOUR is raised
(the throttle would otherwise skip nearly every invitation) and M3_MAX_WINDOW_SEC is an
hour (signed bodies are replayed for longer than five minutes). Prints a table; writes JSON.
For the old intake-only comparison against another commit: `python -m bench.intake --reference REF`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench import replicas, runs, seed
from bench.report import Figures, machine
from bench.servers import MAX_INVITES_PER_HOUR, ROOT, WINDOW_SEC

MODES = ("invited", "pending", "latency", "growth", "lookups", "rss", "replicas", "restart")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", default=",".join(MODES), help=f"comma-separated modes among {','.join(MODES)}")
    parser.add_argument("--seconds", type=float, default=10, help="length of each measured run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--sizes", default="10000,100000,1000000", help="stored signals in the growth inboxes")
    parser.add_argument("--rate", type=float, default=200, help="invited signals a second in the latency mode")
    parser.add_argument("--latency-seconds", type=float, default=20)
    parser.add_argument("--rss-signals", type=int, default=100_000)
    parser.add_argument("--drain", type=float, default=300, help="seconds the outbox may take to settle a run")
    parser.add_argument("--work", type=Path, default=ROOT / "var" / "bench", help="cached inboxes and run files")
    parser.add_argument("--postgres", help="server for the replicas and restart modes' scratch databases")
    parser.add_argument("--json", type=Path, help="where the results go (default: WORK/results-<time>.json)")
    args = parser.parse_args()
    args.modes = [m.strip() for m in args.only.split(",") if m.strip()]
    unknown = set(args.modes) - set(MODES)
    if unknown:
        parser.error(f"unknown mode(s): {', '.join(sorted(unknown))}")
    args.sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]
    return args


def main() -> None:
    args = parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is needed (Debian: apt-get install wrk)")
    args.work.mkdir(parents=True, exist_ok=True)
    run_dir = Path(tempfile.mkdtemp(prefix="run-", dir=args.work))
    bench = runs.Bench(run_dir, args.work / "cache", args.seconds, args.connections, args.drain)
    print(
        f"care-relay bench: {', '.join(args.modes)}; {args.seconds:g} s runs, {args.connections} connections;"
        f" RELAY_AGENT_MAX_INVITES_PER_HOUR={MAX_INVITES_PER_HOUR} (throttle off), M3_MAX_WINDOW_SEC={WINDOW_SEC};"
        f" logs in {run_dir}",
        flush=True,
    )
    started = time.monotonic()
    load_before = os.getloadavg()
    if load_before[0] > 0.5:
        print(f"note: load average {load_before[0]:.1f} before the bench; requests/s will suffer, CPU per request less")
    path = args.json or args.work / f"results-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    about = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "bench_env": {"RELAY_AGENT_MAX_INVITES_PER_HOUR": MAX_INVITES_PER_HOUR, "M3_MAX_WINDOW_SEC": WINDOW_SEC},
    }

    def save() -> None:
        extra = {"wall_seconds": round(time.monotonic() - started, 1), "load_average": [load_before, os.getloadavg()]}
        path.write_text(json.dumps({**about, **extra, **figures.as_json()}, indent=2, default=str) + "\n")

    figures = Figures(on_run=save)
    try:
        measure(args, bench, figures)
    finally:
        for scratch in (*run_dir.glob("*.db*"), *run_dir.glob("*.tsv")):
            scratch.unlink()  # the logs stay
    print()
    figures.print_table()
    print(f"\nJSON: {path}")


def measure(args: argparse.Namespace, bench: runs.Bench, figures: Figures) -> None:
    if "invited" in args.modes or "pending" in args.modes:
        figures.run("bare", runs.bare_path(bench))
    if "pending" in args.modes:
        figures.run("pending", runs.pending_path(bench))
    if "invited" in args.modes:
        database = bench.work / "invited.db"
        seed.inbox_copy(bench.cache, 0, database)
        figures.run("invited", runs.invited_path(bench, database))
    if "latency" in args.modes:
        figures.run("latency", runs.latency(bench, args.rate, args.latency_seconds))
    largest: Path | None = None
    if "growth" in args.modes:
        for size in args.sizes:
            database = bench.work / f"growth-{size}.db"
            seeded = seed.inbox_copy(bench.cache, size, database)
            result = runs.invited_path(bench, database, name=f"growth-{size}")
            figures.run(f"growth_{size}", {**result, "size": size, "seeding_s": seeded})
            if largest is not None:
                largest.unlink(missing_ok=True)
            largest = database
        figures.growth_ratio()
    if "lookups" in args.modes:
        if largest is None:
            largest = bench.work / f"growth-{max(args.sizes)}.db"
            seed.inbox_copy(bench.cache, max(args.sizes), largest)
        figures.run("lookups", {**runs.lookups(bench, largest), "size": max(args.sizes)})
    if "rss" in args.modes:
        figures.run("rss", runs.peak_rss(bench, args.rss_signals))
    measure_postgres(args, bench, figures)


def measure_postgres(args: argparse.Namespace, bench: runs.Bench, figures: Figures) -> None:
    postgres = args.postgres or os.environ.get("BENCH_POSTGRES_URL") or os.environ.get("TEST_POSTGRES_URL")
    if {"replicas", "restart"} & set(args.modes) and not postgres:
        print("note: replicas and restart skipped: no --postgres URL (or TEST_POSTGRES_URL)")
        return
    if "replicas" in args.modes:
        figures.run("replicas", replicas.intake_scaling(bench, replicas.postgres_url(postgres)))
    if "restart" in args.modes:
        figures.run("restart", replicas.restart(bench, replicas.postgres_url(postgres)))


if __name__ == "__main__":
    sys.exit(main())
