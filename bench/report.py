"""The bench's output: figures (each with what it measures and, where issue 11 sets one, its target),
printed as a table and kept as JSON beside the raw results of every run and the machine's description."""

from __future__ import annotations

import math
import os
import platform
import re
import subprocess
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.servers import ROOT


@dataclass
class Figure:
    name: str
    value: float | None
    unit: str
    what: str
    target: str = ""
    met: bool | None = None


def machine() -> dict[str, Any]:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = re.search(r"model name\s*:\s*(.+)", cpuinfo)
    memory = re.search(r"MemTotal:\s+(\d+) kB", Path("/proc/meminfo").read_text())

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False).stdout.strip()

    return {
        "nproc": os.cpu_count(),
        "memory_gb": round(int(memory.group(1)) / 1024**2, 1) if memory else None,
        "cpu": model.group(1).strip() if model else platform.processor(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "git_commit": git("rev-parse", "HEAD"),
        "git_dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
    }


def _fmt(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if math.isinf(value):
        return "inf"
    return f"{value:,.2f}" if abs(value) < 10 else f"{value:,.0f}"


def _progress(name: str, result: dict[str, Any]) -> None:
    keys = ("rps", "p50_ms", "p95_ms", "p99_ms", "cpu_us", "per_signal", "at_fake", "rss_mb", "non2xx")
    shown = "  ".join(f"{k} {_fmt(result[k])}" for k in keys if isinstance(result.get(k), int | float))
    print(f"{name:20s} {shown}", flush=True)


class Figures:
    def __init__(self, on_run: Callable[[], None] = lambda: None) -> None:
        self.runs: dict[str, dict[str, Any]] = {}
        self.figures: list[Figure] = []
        #: called after each run, so a long bench leaves its results so far if it stops
        self._on_run = on_run

    def add(
        self, name: str, value: float | None, unit: str, what: str, target: Callable[[float], bool] | None = None,
        target_text: str = "",
    ) -> None:  # fmt: skip
        met = None if value is None or target is None or math.isnan(value) else target(value)
        self.figures.append(Figure(name, value, unit, what, target_text, met))

    def run(self, name: str, result: dict[str, Any]) -> None:
        """Keep one run's raw result, print a line about it, and derive its figures."""
        self.runs[name] = result
        _progress(name, result)
        for part, sub in result.items():
            if isinstance(sub, dict) and "rps" in sub:
                _progress(f"{name} {part}", sub)
        kind = name.split("_", maxsplit=1)[0]
        getattr(self, f"_{kind}")(name, result)
        self._on_run()

    def _bare(self, name: str, r: dict[str, Any]) -> None:
        self.add("bare rps", r["rps"], "req/s", "bare aiohttp handler: reads the body, answers 202 (wrk, closed loop)")
        self.add("bare CPU", r["cpu_us"], "µs/req", "bare handler's CPU time per request")

    def _pending(self, name: str, r: dict[str, Any]) -> None:
        bare = self.runs.get("bare", {})
        self.add("pending rps", r["rps"], "req/s", "relay, signals with no grant (pending_consent), SQLite")
        self.add("pending CPU", r["cpu_us"], "µs/req", "relay CPU per pending signal (all threads)")
        if bare:
            self.add("pending/bare rps", r["rps"] / bare["rps"], "x", "pending path requests/s over the bare handler's",
                     lambda v: v >= 0.35, ">= 0.35")  # fmt: skip
            self.add(
                "bare/pending CPU", bare["cpu_us"] / r["cpu_us"], "x", "bare CPU per request over the pending path's"
            )

    def _invited(self, name: str, r: dict[str, Any]) -> None:
        bare = self.runs.get("bare", {})
        self.add("invited rps", r["rps"], "req/s", "relay, invited signals (1-3 Slack invitations each), intake 202s")
        if bare:
            self.add("invited/bare rps", r["rps"] / bare["rps"], "x", "invited path requests/s over the bare handler's",
                     lambda v: v >= 0.25, ">= 0.25")  # fmt: skip
        self._delivery("invited", r)

    def _delivery(self, prefix: str, r: dict[str, Any]) -> None:
        self.add(
            f"{prefix} CPU intake", r["cpu_intake_us"], "µs/signal", "relay CPU during the wrk run, per stored signal"
        )
        self.add(
            f"{prefix} CPU",
            r["cpu_us"],
            "µs/signal",
            "relay CPU per invited signal, intake plus the outbox sending its invitations",
        )
        self.add(f"{prefix} invitations/signal", r["per_signal"], "", "invitations decided per stored signal")
        self.add(f"{prefix} invitations sent", r["invitation_statuses"].get("sent", 0), "",
                 f"invitation rows 'sent' (of {r['invitations']}); chat.postMessage at the fake: {r['at_fake']}")  # fmt: skip
        self.add(f"{prefix} outbox drain", r["drain_s"], "s",
                 f"time after the run until the outbox settled it ({r['unsettled']} left unsettled)")  # fmt: skip

    def _growth(self, name: str, r: dict[str, Any]) -> None:
        size = r["size"]
        self.add(f"growth {size:,} rps", r["rps"], "req/s", f"invited path on an inbox of {size:,} stored signals")
        self._delivery(f"growth {size:,}", r)

    def growth_ratio(self) -> None:
        """CPU per invited signal on the largest inbox over the smallest (after every growth run)."""
        runs = sorted((r for k, r in self.runs.items() if k.startswith("growth_")), key=lambda r: int(r["size"]))
        if len(runs) > 1:
            first, last = runs[0], runs[-1]
            self.add(f"CPU {last['size']:,} / {first['size']:,}", last["cpu_us"] / first["cpu_us"], "x",
                     "CPU per invited signal, largest inbox over smallest", lambda v: 0.8 <= v <= 1.2, "0.8-1.2")  # fmt: skip
            self._on_run()

    def _latency(self, name: str, r: dict[str, Any]) -> None:
        what = f"202 → chat.postMessage at the fake, per invitation, at {r['rate']:g} invited signals/s (open loop)"
        self.add("202→Slack p50", r["p50_ms"], "ms", what)
        self.add(
            "202→Slack p95", r["p95_ms"], "ms", what + "; missing ones count as infinite", lambda v: v <= 50, "<= 50"
        )
        self.add("202→Slack p99", r["p99_ms"], "ms", what)
        self.add("202 p99", r["accept_p99_ms"], "ms", "scheduled send → 202, per signal, in the paced run")
        self.add(
            "missing in run",
            r["missing_in_run"],
            "",
            f"invitations not at the fake 2 s after the run (of {r['invitations']})",
        )
        self.add("latency CPU share", r["cpu_share"], "cores", "relay CPU seconds per second during the paced run")

    def _lookups(self, name: str, r: dict[str, Any]) -> None:
        size = r["size"]
        for key, path in (("status", "GET /v1/events/{id}"), ("inbox", "GET /admin/inbox")):
            for c in (1, 8):
                run = r[f"{key}_c{c}"]
                what = f"{path} on {size:,} stored signals, {c} connection(s), admin bearer"
                self.add(f"{key} c{c} rps", run["rps"], "req/s", what)
                self.add(f"{key} c{c} p50", run["p50_ms"], "ms", what)
                target = (lambda v: v <= 5, "<= 5") if key == "status" else (None, "")
                self.add(f"{key} c{c} p99", run["p99_ms"], "ms", what, *target)
                self.add(f"{key} c{c} CPU", run["cpu_us"], "µs/req", what)

    def _rss(self, name: str, r: dict[str, Any]) -> None:
        self.add("peak RSS", r["rss_mb"], "MB", f"relay VmHWM after {r['signals']:,} invited signals and the outbox's sending"
                 f" ({r['unsettled']} invitations left unsettled)", lambda v: v <= 150, "<= 150")  # fmt: skip
        self.add("RSS after intake", r["rss_after_intake_mb"], "MB", "VmHWM right after the last 202, before draining")

    def _replicas(self, name: str, r: dict[str, Any]) -> None:
        for path in ("pending", "invited", "apart"):
            if f"{path}_x2" not in r:
                continue
            for n in (1, 2) if path != "apart" else (2,):
                run = r[f"{path}_x{n}"]
                what = f"{path} path on PostgreSQL, {n} relay(s), wrk split between them"
                if path == "apart":
                    what = "invited path on PostgreSQL, 2 relays whose signals reach disjoint halves of the agents"
                self.add(f"pg {path} x{n} rps", run["rps"], "req/s", what)
                self.add(f"pg {path} x{n} CPU", run["cpu_us"], "µs/req", what + "; relay CPU, all replicas")
                if "machine_busy_cores" in run:
                    cores = f"of {run['cores']} cores, the relays {run['relay_cores']:.2f} of them"
                    self.add(
                        f"pg {path} x{n} busy cores", run["machine_busy_cores"], "cores", what + "; busy, " + cores
                    )
            if path == "apart":  # a diagnosis beside invited x2, not the figure the target is for
                self.add("pg apart x2/invited x1", r["apart_ratio"], "x", "two relays sharing no agent over one")
                continue
            self.add(f"pg {path} x2/x1", r[f"{path}_ratio"], "x", f"{path} intake, two replicas over one",
                     lambda v: v >= 1.5, ">= 1.5")  # fmt: skip

    def _restart(self, name: str, r: dict[str, Any]) -> None:
        what = f"kill -9 under invited load ({r['to_redeliver']} outbox rows unsettled, {r['sending_at_kill']} claimed)"
        self.add("restart → listening", r["listening_s"], "s", "PostgreSQL: start to the port answering")
        self.add("restart → last invitation", r["last_invitation_s"], "s", what + "; start to the last chat.postMessage",
                 lambda v: v <= 15, "<= 15")  # fmt: skip
        self.add("restart → settled", r["settled_s"], "s", what + "; start to no invite pending or sending")

    def print_table(self) -> None:
        width = max(len(f.name) for f in self.figures) if self.figures else 10
        print(f"{'figure':{width}s} {'value':>10s} {'unit':10s} {'target':8s}")
        for f in self.figures:
            mark = "" if f.met is None else " ok" if f.met else " MISSED"
            print(f"{f.name:{width}s} {_fmt(f.value):>10s} {f.unit:10s} {f.target:8s}{mark}")

    def as_json(self) -> dict[str, Any]:
        return {"figures": [asdict(f) for f in self.figures], "runs": self.runs}
