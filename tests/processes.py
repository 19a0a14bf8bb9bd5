"""Relay processes for black-box tests: `care-relay serve` as an operator runs it, on a port the system picks.

`RelayProcess` starts `python -m relay.cli serve --port 0` (outside --dev) with the
environment it is given, reads the port it bound from its own start-up log line, and can
be stopped gracefully (SIGTERM), killed (SIGKILL) or started again on the same database.
Helpers beside it sign and post signals, answer invitations through their action links,
and read the database the relays share.
"""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
from sqlalchemy import text

from inbox.db import create_engine
from relay.tokens import Tokens
from tests.fakes.slack import DEFAULT_TOKEN
from tests.support import SERVING_ENV, clean_env, signed

T = TypeVar("T")
LISTENING = re.compile(r"listening on http://[^:\s]+:(\d+)")
M3_SECRET = SERVING_ENV["M3_WEBHOOK_SECRETS"]
ADMIN = {"Authorization": f"Bearer {SERVING_ENV['RELAY_ADMIN_TOKENS']}"}
SLACK_SIGNING_SECRET = "slack-signing-secret-0123456789"


def relay_env(database_url: str, *, slack_api_url: str, callback_url: str, **extra: str) -> dict[str, str]:
    """What `serve` needs outside --dev, Slack on a fake, M3 callbacks to a sink; `extra` settings on top."""
    settings = {
        **SERVING_ENV,
        "RELAY_DATABASE_URL": database_url,
        "SLACK_BOT_TOKEN": DEFAULT_TOKEN,
        "SLACK_SIGNING_SECRET": SLACK_SIGNING_SECRET,
        "SLACK_API_URL": slack_api_url,
        "M3_CALLBACK_URL": callback_url,
        "RELAY_AGENT_MAX_INVITES_PER_HOUR": "100000",
    }
    return clean_env(**{**settings, **extra})


class RelayProcess:
    """`care-relay serve` in its own process; its log (stdout and stderr) in `log`."""

    def __init__(self, env: dict[str, str], cwd: Path, name: str) -> None:
        self._env = env
        self._cwd = cwd
        self.log = cwd / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.url = ""

    async def start(self, within: float = 30.0) -> RelayProcess:
        """Start it and wait until it listens (its log names the port)."""
        offset = self.log.stat().st_size if self.log.exists() else 0
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(  # noqa: ASYNC220 (returns at once; the wait below polls)
                [sys.executable, "-m", "relay.cli", "serve", "--host", "127.0.0.1"],
                env={**self._env, "RELAY_PORT": "0"},  # the system picks a free port
                cwd=self._cwd,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        port = await until(lambda: self._bound_port(offset), within, what=f"{self.log.name}: listening")
        self.url = f"http://127.0.0.1:{port}"
        return self

    def _bound_port(self, offset: int) -> int | None:
        assert self.process is not None
        with self.log.open("rb") as log:
            log.seek(offset)
            found = LISTENING.search(log.read().decode(errors="replace"))
        if found:
            return int(found.group(1))
        if self.process.poll() is not None:
            raise AssertionError(f"serve exited with {self.process.returncode}:\n{self.log.read_text()}")
        return None

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def kill(self) -> None:
        """SIGKILL: nothing of the process runs after this."""
        self.signal(signal.SIGKILL)
        self.wait(10)

    def wait(self, timeout: float) -> int:
        assert self.process is not None
        return self.process.wait(timeout)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


async def until(check: Callable[[], T | None], within: float, *, what: str, every: float = 0.05) -> T:
    """Poll `check` until it returns something other than None or False, within `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        value = check()
        if value is not None and value is not False:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within}s: {what}")
        await asyncio.sleep(every)


async def until_async(check: Callable[[], Awaitable[T | None]], within: float, *, what: str) -> T:
    deadline = time.monotonic() + within
    while True:
        value = await check()
        if value is not None and value is not False:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within}s: {what}")
        await asyncio.sleep(0.1)


async def post_signal(session: aiohttp.ClientSession, url: str, payload: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """POST an M3 signal signed with the relay's M3 secret; the status and the JSON answer."""
    body, headers = signed("m3", payload, secret=M3_SECRET)
    async with session.post(f"{url}/hooks/m3", data=body, headers=headers) as response:
        return response.status, await response.json()


async def seed(session: aiohttp.ClientSession, url: str, agents: list[dict[str, Any]], grant: dict[str, Any]) -> None:
    """Agents and a grant through the admin API of one relay (every replica reads the same directory)."""
    for agent in agents:
        async with session.post(f"{url}/admin/agents", json=agent, headers=ADMIN) as response:
            assert response.status == 201, await response.text()
    async with session.post(f"{url}/admin/consents", json=grant, headers=ADMIN) as response:
        assert response.status == 201, await response.text()


def action_path(invitation_id: int) -> str:
    """The action link of an invitation, signed with the relays' link key (what its agent received)."""
    tokens = Tokens((SERVING_ENV["RELAY_LINK_SECRETS"],), 604800)
    return f"/a/{tokens.action_token(invitation_id)}"


async def ack(session: aiohttp.ClientSession, url: str, invitation_id: int) -> None:
    """The agent answers "soft-checkin" through the invitation's action link."""
    data = {"action": "ack", "response": "soft-checkin"}
    async with session.post(url + action_path(invitation_id), data=data) as response:
        assert response.status == 200, await response.text()


class Database:
    """Reads of the database the relays share (SQLite or PostgreSQL), outside any relay."""

    def __init__(self, url: str) -> None:
        self._engine = create_engine(url, pool_size=2)

    async def rows(self, sql: str, **params: Any) -> list[tuple[Any, ...]]:
        async with self._engine.connect() as conn:
            return [tuple(r) for r in (await conn.execute(text(sql), params)).fetchall()]

    async def close(self) -> None:
        await self._engine.dispose()


def invitation_ids(calls: list[dict[str, Any]]) -> list[int]:
    """The invitation id of each chat.postMessage the fake Slack received (its first button's value)."""
    ids = []
    for params in calls:
        for block in params.get("blocks") or []:
            for element in block.get("elements", []):
                value = str(element.get("value", ""))
                if value.partition(":")[0].isdigit():
                    ids.append(int(value.partition(":")[0]))
                    break
            else:
                continue
            break
    return ids
