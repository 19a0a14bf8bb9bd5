"""Intake throughput, latency and memory against the bare-handler baseline (the pending path only).

`python -m bench` measures the whole set (invited path, latency, growth, lookups, RSS);
this module stays for its `--reference` comparison of two commits.

    python -m bench.intake [--seconds 10] [--connections 32] [--postgres URL] [--reference REF [--rounds 3]]

Starts each server as its own process (one core for the server, wrk on the other),
replays pre-signed ~1.5 KB M3 panic.ui bodies (every one a new event: fresh id, nonce
and timestamp), and prints requests/s, p50/p99 latency, the server's CPU time per request (all its
threads; steadier than requests/s on a busy machine) and its peak RSS.
The relay runs as configured in production minus channels: every signal is verified,
parsed, decided (pending_consent: no grants), and committed with its audit row
before the 202. The warm-up replays bodies of its own, so every measured request is a
new event (none is answered by the cheaper duplicate path).

With `--reference REF` (a commit, branch or tag), the relay at REF is checked out into a
temporary worktree and measured against this tree in interleaved rounds on the same
request bodies; the medians of both, and their ratio, are printed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench import servers
from bench.payloads import write_requests
from bench.servers import cpu_seconds, free_port, peak_rss_mb, wait_for

HERE = Path(__file__).resolve().parent


def run_wrk(port: int, requests: Path, seconds: int, connections: int) -> dict[str, float]:
    return servers.run_wrk(
        f"http://127.0.0.1:{port}", "requests.lua", [str(requests)], seconds=seconds, connections=connections
    )


def measure(
    name: str,
    command: list[str],
    env: dict[str, str],
    port: int,
    args: argparse.Namespace,
    requests: Path,
    warmup: Path,
    cwd: Path | None = None,
) -> dict[str, float]:
    server = subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(port)
        run_wrk(port, warmup, 2, args.connections)  # warm-up: bodies of its own, so none measured is a replay
        cpu_before = cpu_seconds(server.pid)
        result = run_wrk(port, requests, args.seconds, args.connections)
        result["cpu_us"] = (cpu_seconds(server.pid) - cpu_before) / max(result["requests"], 1) * 1e6
        result["rss_mb"] = peak_rss_mb(server.pid)
    finally:
        server.terminate()
        server.wait(30)
    print(
        f"{name:28s} {result['rps']:8.0f} req/s  p50 {result['p50_ms']:6.1f} ms  p99 {result['p99_ms']:6.1f} ms  "
        f"CPU {result['cpu_us']:4.0f} µs/req  peak RSS {result['rss_mb']:5.0f} MB  non-2xx {result['non2xx']:.0f}",
        flush=True,
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--postgres", help="also run the relay on this postgresql+asyncpg:// URL (a scratch database)")
    parser.add_argument("--reference", help="also measure the relay at this git commit, interleaved with this tree")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds with --reference")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is needed (Debian: apt-get install wrk)")
    work = Path(tempfile.mkdtemp(prefix="care-relay-bench-"))
    requests = work / "requests.tsv"
    size = write_requests(requests, 120_000, invited=False)
    warmup = work / "warmup.tsv"
    write_requests(warmup, 30_000, invited=False)
    print(f"{args.connections} connections, {args.seconds} s, {size} B signed bodies, each a new event", flush=True)

    bin_dir = Path(sys.executable).parent
    port = free_port()
    bare = measure(
        "bare aiohttp handler",
        [sys.executable, str(HERE / "bare.py"), str(port)],
        dict(os.environ),
        port,
        args,
        requests,
        warmup,
    )

    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("RELAY_", "M3_", "AISHA_", "SLACK_", "TWILIO_", "CARE_"))
    }
    env.update(
        {
            "M3_WEBHOOK_SECRETS": servers.M3_SECRET,
            "AISHA_WEBHOOK_SECRETS": "bench-aisha-0123456789",
            "RELAY_LINK_SECRETS": "bench-link-0123456789",
            "RELAY_ADMIN_TOKENS": servers.ADMIN_TOKEN,
            "RELAY_DATABASE_URL": f"sqlite+aiosqlite:///{work}/relay.db",
            "RELAY_PUBLIC_BASE_URL": "http://localhost",  # required by serve; no link is followed here
            # every bench signal is from one actor: coalesced, all but the first would join one loop,
            # and the invited path (a new loop each time) is what is measured
            "RELAY_COALESCE": "false",
        }
    )
    port = free_port()
    if args.reference:
        compare(args, env, work, requests, warmup, bare)
        shutil.rmtree(work, ignore_errors=True)
        return
    relay = measure(
        "relay intake, SQLite",
        [str(bin_dir / "care-relay"), "serve", "--port", str(port)],
        env,
        port,
        args,
        requests,
        warmup,
    )
    print(
        f"relay / bare: {relay['rps'] / bare['rps']:.2f} by requests/s,"
        f" {bare['cpu_us'] / relay['cpu_us']:.2f} by CPU per request",
        flush=True,
    )
    if args.postgres:
        env["RELAY_DATABASE_URL"] = args.postgres
        port = free_port()
        measure(
            "relay intake, PostgreSQL",
            [str(bin_dir / "care-relay"), "serve", "--port", str(port)],
            env,
            port,
            args,
            requests,
            warmup,
        )
    shutil.rmtree(work, ignore_errors=True)


def compare(
    args: argparse.Namespace, env: dict[str, str], work: Path, requests: Path, warmup: Path, bare: dict[str, float]
) -> None:
    """This tree against `--reference`, interleaved, each round on a fresh SQLite file."""
    tree = work / "reference"
    subprocess.run(
        ["git", "-C", str(HERE.parent), "worktree", "add", "--detach", "--quiet", str(tree), args.reference], check=True
    )
    try:
        results: dict[str, list[dict[str, float]]] = {"this tree": [], f"reference {args.reference}": []}
        for round_ in range(args.rounds):
            for name, root in ((f"reference {args.reference}", tree), ("this tree", HERE.parent)):
                port = free_port()
                run_env = {
                    **env,
                    "PYTHONPATH": str(root),
                    "RELAY_DATABASE_URL": f"sqlite+aiosqlite:///{work}/{round_}-{port}.db",
                }
                command = [sys.executable, "-c", "from relay.cli import main; main()", "serve", "--port", str(port)]
                # the server's own folder first on its path, so `relay` is that tree's (not the installed one)
                results[name].append(
                    measure(f"{name} #{round_ + 1}", command, run_env, port, args, requests, warmup, cwd=root)
                )
    finally:
        subprocess.run(["git", "-C", str(HERE.parent), "worktree", "remove", "--force", str(tree)], check=False)
    medians = {
        name: {key: statistics.median(r[key] for r in runs) for key in ("rps", "cpu_us", "p99_ms", "rss_mb")}
        for name, runs in results.items()
    }
    for name, m in medians.items():
        print(
            f"median {name:30s} {m['rps']:8.0f} req/s  CPU {m['cpu_us']:4.0f} µs/req  p99 {m['p99_ms']:6.1f} ms  "
            f"peak RSS {m['rss_mb']:5.0f} MB  ({bare['cpu_us'] / m['cpu_us']:.2f} of the bare handler by CPU)",
            flush=True,
        )
    this, ref = medians["this tree"], medians[f"reference {args.reference}"]
    print(
        f"this tree / reference: CPU per request {this['cpu_us'] / ref['cpu_us']:.2f},"
        f" requests/s {this['rps'] / ref['rps']:.2f}"
    )


if __name__ == "__main__":
    main()
