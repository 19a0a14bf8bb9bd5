"""The front door on another port: `make run PORT=8081` and `RELAY_PORT=8081 make run`, end to end."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

from tests.support import clean_env, cli, dev_server

ROOT = Path(__file__).resolve().parents[3]


#: how many ports to try: one found free can be taken before `serve` binds it
PORT_TRIES = 5


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def dev_server_on_a_given_port(how: str, cwd: Path) -> Iterator[tuple[int, subprocess.Popen[str]]]:
    """`serve --dev` on a port given by RELAY_PORT (or --port), and that port.

    The port is found free, then bound by `serve`; in between anything on the machine may take it
    (an outgoing connection gets its port from the same range). `serve` then stops with "address
    already in use", and another port is tried.
    """
    for _ in range(PORT_TRIES):
        port = _free_port()
        env = clean_env(RELAY_PORT=str(port)) if how == "RELAY_PORT" else clean_env()
        flag = ["--port", str(port)] if how == "--port" else []
        with ExitStack() as stack:
            try:
                server = stack.enter_context(dev_server(env, cwd, *flag))
            except AssertionError as failed:
                if "address already in use" in str(failed):
                    continue
                raise
            yield port, server
            return
    raise AssertionError(f"{PORT_TRIES} ports found free were taken before serve bound them")


@pytest.mark.parametrize("how", ["RELAY_PORT", "--port"])
def test_dev_server_on_another_port_links_and_emit_follow_it(how: str, tmp_path: Path) -> None:
    """On a port given by RELAY_PORT (or --port, as `make run PORT=` passes it), the banner, `emit golden-path`
    (run without the port) and the printed action link all use that port, and the link opens."""
    with dev_server_on_a_given_port(how, tmp_path) as (port, server):
        assert server.stdout is not None
        emitted = cli(clean_env(), tmp_path, "emit", "golden-path")
        assert f"POST http://127.0.0.1:{port}/hooks/m3 -> 202" in emitted
        assert f"status: http://127.0.0.1:{port}/v1/events/" in emitted
        seen = []
        for line in server.stdout:
            seen.append(line)
            if link := re.search(r"http://[^\s()]+/a/[A-Za-z0-9._-]+", line):
                break
        assert link is not None and link.group(0).startswith(f"http://127.0.0.1:{port}/a/")
        # the rest of the banner names the links' address
        assert any(f"(http://127.0.0.1:{port}/a/…)" in line for line in seen), seen
        with urllib.request.urlopen(link.group(0), timeout=10) as page:  # noqa: S310 (a loopback URL of this test)
            assert page.status == 200


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_run_passes_port_through() -> None:
    """`make run PORT=8081` runs `care-relay serve --dev --port 8081`; without PORT, no --port (RELAY_PORT decides)."""
    with_port = subprocess.run(["make", "-n", "run", "PORT=8081"], cwd=ROOT, capture_output=True, text=True, check=True)
    assert "care-relay serve --dev --port 8081" in with_port.stdout
    without = subprocess.run(["make", "-n", "run"], cwd=ROOT, capture_output=True, text=True, check=True)
    assert re.search(r"care-relay serve --dev\s*$", without.stdout, re.MULTILINE)
