"""Processes the bench measures: each server its own process, read from /proc, loaded by wrk.

`Server` starts a command and waits until its port answers; `cpu_seconds` and
`peak_rss_mb` read a process (all its threads) from /proc; `run_wrk` drives a port with a
lua script and parses wrk's summary and latency distribution.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BIN = Path(sys.executable).parent

M3_SECRET = "bench-m3-secret-0123456789"  # serve outside --dev takes no secret under 16 characters
ADMIN_TOKEN = "bench-admin-0123456789"
SLACK_TOKEN = "xoxb-bench-0000000000"
#: invitations an agent may get per hour in the bench: high, so the throttle never turns
#: the invited path into the skipped one (production's default is 6).
MAX_INVITES_PER_HOUR = 1_000_000_000
#: the widest signature window: some runs replay signed bodies for longer than 5 minutes.
WINDOW_SEC = 3600


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(port: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"server on port {port} did not start")


def peak_rss_mb(pid: int) -> float:
    """VmHWM: the most resident memory the process ever had."""
    text = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"VmHWM:\s+(\d+) kB", text)
    return int(match.group(1)) / 1024 if match else float("nan")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU of the whole process (every thread) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_jiffies() -> tuple[int, int]:
    """(busy, total) clock ticks of every core since boot, from /proc/stat (idle and iowait are not busy)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    total = sum(fields[:8])  # user nice system idle iowait irq softirq steal (guest time is inside user)
    return total - fields[3] - fields[4], total


def busy_cores(before: tuple[int, int], after: tuple[int, int]) -> float:
    """How many of the machine's cores were busy, on average, between two `machine_jiffies` readings."""
    busy, total = after[0] - before[0], after[1] - before[1]
    return busy / max(total, 1) * (os.cpu_count() or 1)


class Server:
    """A server process on `port`, stopped on exit; its output goes to `log` (or nowhere)."""

    def __init__(
        self, command: Sequence[str], port: int, *, env: dict[str, str] | None = None, log: Path | None = None
    ) -> None:
        self.port = port
        self._log = log.open("ab") if log else None
        self.process = subprocess.Popen(
            list(command),
            env=env,
            cwd=ROOT,
            stdout=self._log or subprocess.DEVNULL,
            stderr=subprocess.STDOUT if self._log else subprocess.DEVNULL,
        )
        try:
            wait_for(port)
        except BaseException:
            self.stop()
            raise

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cpu(self) -> float:
        return cpu_seconds(self.pid)

    def rss(self) -> float:
        return peak_rss_mb(self.pid)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self._log:
            self._log.close()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()


def bare(log: Path | None = None) -> Server:
    """The baseline: a bare aiohttp handler that reads the body and answers 202."""
    port = free_port()
    return Server([sys.executable, str(HERE / "bare.py"), str(port)], port, log=log)


def fake_slack(log: Path | None = None) -> Server:
    port = free_port()
    return Server([sys.executable, "-m", "bench.fake_slack", str(port)], port, log=log)


def relay_env(database: Path, slack_url: str | None = None) -> dict[str, str]:
    """The relay as configured in production (no --dev), on a SQLite file, Slack on the fake when given."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("RELAY_", "M3_", "AISHA_", "SLACK_", "TWILIO_", "CARE_"))
    }
    env.update(
        {
            "M3_WEBHOOK_SECRETS": M3_SECRET,
            "M3_MAX_WINDOW_SEC": str(WINDOW_SEC),
            "AISHA_WEBHOOK_SECRETS": "bench-aisha-0123456789",
            "RELAY_LINK_SECRETS": "bench-link-0123456789",
            "RELAY_ADMIN_TOKENS": ADMIN_TOKEN,
            "RELAY_DATABASE_URL": f"sqlite+aiosqlite:///{database}",
            "RELAY_PUBLIC_BASE_URL": "http://localhost",  # required by serve; no link is followed here
            # every bench signal is from one actor: coalesced, all but the first would join one loop,
            # and the invited path (a new loop each time) is what is measured
            "RELAY_COALESCE": "false",
            "RELAY_AGENT_MAX_INVITES_PER_HOUR": str(MAX_INVITES_PER_HOUR),
        }
    )
    if slack_url:
        env.update(
            {
                "SLACK_BOT_TOKEN": SLACK_TOKEN,
                "SLACK_SIGNING_SECRET": "bench-slack-signing-0123456789",
                "SLACK_API_URL": slack_url + "/api/",
            }
        )
    return env


def relay(database: Path, slack_url: str | None = None, log: Path | None = None) -> Server:
    port = free_port()
    command = [str(BIN / "care-relay"), "serve", "--port", str(port)]
    return Server(command, port, env=relay_env(database, slack_url), log=log)


def _ms(text: str) -> float:
    number = float(re.sub(r"[a-z]+$", "", text))
    if text.endswith("us"):
        return number / 1000
    if text.endswith("ms"):
        return number
    if text.endswith("m"):
        return number * 60_000
    return number * 1000  # "s"


def run_wrk(
    url: str,
    script: str,
    script_args: Sequence[str],
    *,
    seconds: float,
    connections: int,
    limit: int | None = None,
    timeout: float = 10,
) -> dict[str, float]:
    """wrk with one thread and `connections` connections, driven by a lua script of bench/; its figures.

    With `limit` (requests.lua only), wrk stops after that many responses (or `seconds`).
    """
    flag = Path(tempfile.mkstemp(prefix="wrk-limit-")[1])
    flag.unlink()
    extra = [str(limit), str(flag)] if limit else []
    command = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", f"--timeout={timeout:g}s"]
    command += ["--latency", "-s", str(HERE / script), url, "--", *script_args, *extra]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as wrk:
        if limit:
            while wrk.poll() is None and not flag.exists():
                time.sleep(0.05)
            if wrk.poll() is None:
                wrk.send_signal(signal.SIGINT)  # wrk stops its clock and prints its summary
        out = wrk.communicate()[0]
    flag.unlink(missing_ok=True)
    if wrk.returncode:
        raise RuntimeError(f"wrk failed ({wrk.returncode})")
    return parse_wrk(out)


def parse_wrk(out: str) -> dict[str, float]:
    def value(pattern: str, default: str = "nan") -> str:
        found = re.search(pattern, out)
        return found.group(1) if found else default

    return {
        "requests": float(value(r"(\d+) requests in")),
        "seconds": _ms(value(r"requests in ([\d.]+[a-z]+),")) / 1000,
        "rps": float(value(r"Requests/sec:\s+([\d.]+)")),
        "p50_ms": _ms(value(r"(?m)^\s+50%\s+(\S+)")),
        "p99_ms": _ms(value(r"(?m)^\s+99%\s+(\S+)")),
        "non2xx": int(value(r"Non-2xx or 3xx responses: (\d+)", "0")),
        "errors": sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out)),
    }
