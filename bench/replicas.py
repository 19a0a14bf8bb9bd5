"""Replicas on PostgreSQL: intake with one relay and with two on one scratch database, and the
restart after a kill -9 (`python -m bench --only replicas,restart --postgres URL`).

The scratch database is created on the server of `--postgres` (default: TEST_POSTGRES_URL)
and dropped after the run. `intake_scaling` runs wrk against one replica, then two wrk
processes (half the connections each) against two replicas, each run on a fresh database
with the bench directory, for the pending path (no grant: no agent is locked) and the
invited path (the outbox sending to the fake Slack meanwhile). While two replicas run,
pg_stat_activity is sampled: what the relays' sessions wait on says what still serialises
them; and every run reads how many of the machine's cores were busy, and how many of those
were the relays' (the rest is PostgreSQL, wrk and the fake Slack): with no core left idle,
a second replica can only share the CPU the first one had. `restart` loads one relay with invited signals, kills it with SIGKILL mid-run,
starts it again and times the way to the last invitation redelivered.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from bench import servers
from bench.runs import Bench, arrivals
from bench.seed import seed_directory_at
from bench.servers import Server, run_wrk
from bench.team import GROUPS


def postgres_url(given: str | None) -> str:
    url = given or os.environ.get("BENCH_POSTGRES_URL") or os.environ.get("TEST_POSTGRES_URL")
    if not url:
        raise SystemExit("the replicas and restart modes need PostgreSQL: --postgres URL (or TEST_POSTGRES_URL)")
    return url


def _dsn(url: str, database: str | None = None) -> str:
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if database is not None:
        parsed = parsed.set(database=database)
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


async def _admin(url: str, statement: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(_dsn(url))
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@contextlib.contextmanager
def scratch_database(base: str) -> Iterator[str]:
    """A new database on the server of `base`, migrated and holding the bench directory; dropped after."""
    from sqlalchemy.engine import make_url

    name = f"relay_bench_{uuid.uuid4().hex[:10]}"
    asyncio.run(_admin(base, f'CREATE DATABASE "{name}"'))
    url = make_url(base).set(database=name).render_as_string(hide_password=False)
    try:
        asyncio.run(seed_directory_at(url))
        yield url
    finally:
        asyncio.run(_admin(base, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _scalar(url: str, sql: str) -> Any:
    import asyncpg

    conn = await asyncpg.connect(_dsn(url))
    try:
        return await conn.fetchval(sql)
    finally:
        await conn.close()


def scalar(url: str, sql: str) -> Any:
    return asyncio.run(_scalar(url, sql))


def relay(url: str, slack_url: str | None, log: Path) -> Server:
    port = servers.free_port()
    env = servers.relay_env(Path("/nonexistent"), slack_url)
    env["RELAY_DATABASE_URL"] = url
    return Server([str(servers.BIN / "care-relay"), "serve", "--port", str(port)], port, env=env, log=log)


class WaitSampler:
    """Samples what the relay sessions of one database wait on (pg_stat_activity), in a thread."""

    def __init__(self, url: str, database: str) -> None:
        self._url = url
        self._database = database
        self.samples: Counter[str] = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    async def _run(self) -> None:
        import asyncpg

        conn = await asyncpg.connect(_dsn(self._url))
        try:
            while not self._stop.is_set():
                rows = await conn.fetch(
                    "SELECT state, wait_event_type, wait_event FROM pg_stat_activity"
                    " WHERE datname = $1 AND pid <> pg_backend_pid() AND backend_type = 'client backend'",
                    self._database,
                )
                for r in rows:
                    waiting = f"{r['wait_event_type']}:{r['wait_event']}" if r["wait_event_type"] else "on CPU"
                    self.samples[f"{r['state']} / {waiting}"] += 1
                await asyncio.sleep(0.05)
        finally:
            await conn.close()

    def __enter__(self) -> WaitSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


def _load(replicas: list[Server], requests: list[Path], seconds: float, connections: int) -> dict[str, Any]:
    """wrk on each replica at once (connections split between them), each from its own request file."""
    share = max(1, connections // len(replicas))
    results: list[dict[str, Any]] = [{} for _ in replicas]

    def drive(i: int) -> None:
        args = [str(requests[i])]
        results[i] = run_wrk(replicas[i].url, "requests.lua", args, seconds=seconds, connections=share)

    cpu = [r.cpu() for r in replicas]
    machine = servers.machine_jiffies()
    started = time.monotonic()
    threads = [threading.Thread(target=drive, args=(i,)) for i in range(len(replicas))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    cores = servers.busy_cores(machine, servers.machine_jiffies())
    cpu_s = sum(r.cpu() - c for r, c in zip(replicas, cpu, strict=True))
    requests_done = sum(r["requests"] for r in results)
    return {
        "rps": sum(r["rps"] for r in results),
        "requests": requests_done,
        "non2xx": sum(r["non2xx"] for r in results),
        "errors": sum(r["errors"] for r in results),
        "p99_ms": max(r["p99_ms"] for r in results),
        "cpu_us": cpu_s / max(requests_done, 1) * 1e6,
        # where the machine's cores went: the relays, and everything else (PostgreSQL, wrk, the fake Slack)
        "machine_busy_cores": cores,
        "relay_cores": cpu_s / max(elapsed, 1e-9),
        "others_cores": cores - cpu_s / max(elapsed, 1e-9),
        "cores": os.cpu_count(),
        "per_replica": results,
    }


#: the bench directory's groups in two halves: signals sent to one replica name only the first
#: half, to the other only the second, so the two never invite the same agent (no shared lock)
_HALVES = (sorted(GROUPS)[: len(GROUPS) // 2], sorted(GROUPS)[len(GROUPS) // 2 :])


def intake_scaling(bench: Bench, base: str) -> dict[str, Any]:
    """Requests/s and relay CPU per request, one replica then two, pending and invited paths;
    and two replicas whose invited signals reach disjoint halves of the directory (`apart`):
    beside `invited_x2`, what the agents' hourly-limit locks cost two replicas."""
    database = base.rsplit("/", 1)[-1]
    out: dict[str, Any] = {}
    count = max(20_000, int(bench.seconds * 3000))
    for path, invited in (("pending", False), ("invited", True), ("apart", True)):
        halves: tuple[Sequence[str] | None, ...] = _HALVES if path == "apart" else (None, None)
        files = [bench.requests(f"replicas-{path}-{i}", count, invited=invited, groups=halves[i]) for i in range(2)]
        warm = [bench.requests(f"replicas-{path}-warm-{i}", 2000, invited=invited, groups=halves[i]) for i in range(2)]
        for n in (1, 2) if path != "apart" else (2,):
            name = f"{path}_x{n}"
            with contextlib.ExitStack() as stack:
                url = stack.enter_context(scratch_database(base))
                fake = stack.enter_context(servers.fake_slack(bench.log(f"fake-{name}"))) if invited else None
                replicas = [
                    stack.enter_context(relay(url, fake.url if fake else None, bench.log(f"relay-{name}-{i}")))
                    for i in range(n)
                ]
                _load(replicas, warm[:n], 2, bench.connections)
                scratch = url.rsplit("/", 1)[-1].split("?")[0]
                with WaitSampler(base, scratch) as waits:
                    result = _load(replicas, files[:n], bench.seconds, bench.connections)
                total = sum(waits.samples.values()) or 1
                result["waits"] = {k: round(v / total, 3) for k, v in waits.samples.most_common(8)}
                result["signals"] = scalar(url, "SELECT COUNT(*) FROM signal")
            out[name] = result
        one = out["invited_x1" if path == "apart" else f"{path}_x1"]["rps"]
        out[f"{path}_ratio"] = out[f"{path}_x2"]["rps"] / max(one, 1e-9)
    out["database"] = database
    return out


def restart(bench: Bench, base: str) -> dict[str, Any]:
    """kill -9 one relay under invited load, start it again: seconds to the last invitation redelivered."""
    requests = bench.requests("restart", max(10_000, int(bench.seconds * 2500)), invited=True)
    with (
        scratch_database(base) as url,
        servers.fake_slack(bench.log("fake-restart")) as fake,
    ):
        first = relay(url, fake.url, bench.log("relay-restart"))
        try:
            stopper = threading.Timer(bench.seconds / 2, lambda: os.kill(first.pid, signal.SIGKILL))
            stopper.start()
            with contextlib.suppress(RuntimeError):  # wrk may report the dropped connections as a failure
                run_wrk(
                    first.url, "requests.lua", [str(requests)], seconds=bench.seconds, connections=bench.connections
                )
            stopper.join()
        finally:
            first.process.wait()
        unsettled = "SELECT COUNT(*) FROM outbox WHERE kind = 'invite' AND status IN ('pending', 'sending')"
        at_kill = {
            "sending": scalar(url, "SELECT COUNT(*) FROM outbox WHERE status = 'sending'"),
            "pending": scalar(url, "SELECT COUNT(*) FROM outbox WHERE status = 'pending'"),
            "signals": scalar(url, "SELECT COUNT(*) FROM signal"),
        }
        started = time.monotonic()
        with relay(url, fake.url, bench.log("relay-restart-2")):
            listening = time.monotonic() - started
            while scalar(url, unsettled) and time.monotonic() - started < bench.drain:
                time.sleep(0.1)
            settled = time.monotonic() - started
            seen = arrivals(fake)["arrivals"]
        last = max((t for _, t in seen), default=float("nan"))
    return {
        **{f"{k}_at_kill": v for k, v in at_kill.items()},
        "listening_s": listening,
        "settled_s": settled,
        "last_invitation_s": last - started,
        "to_redeliver": int(at_kill["sending"]) + int(at_kill["pending"]),
    }
