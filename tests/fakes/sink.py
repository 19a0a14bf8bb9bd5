"""A local HTTP sink that records what it is sent and answers as told (callbacks, workflow engines)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from multidict import CIMultiDict

#: a scripted "status" that never answers: the request hangs until the client gives up or the sink closes
HANG = -1


@dataclass
class Received:
    path: str
    headers: CIMultiDict[str]
    body: bytes
    #: what the sink answered (None while a hanging request waits)
    status: int | None = None


@dataclass
class Sink:
    """`async with Sink() as sink:`; `sink.url`; `sink.answer(500, times=2)`; `sink.hang()`;
    `async with sink.refusing():`; `sink.received`.

    Every answer closes its connection, so each request is a new connection: one made while
    the sink is refusing is refused, never carried on a kept-alive one.
    """

    received: list[Received] = field(default_factory=list)
    _script: list[tuple[int, dict[str, str], float]] = field(default_factory=list)
    url: str = ""

    def answer(self, status: int, *, times: int = 1, headers: dict[str, str] | None = None, delay: float = 0.0) -> None:
        """The next `times` requests get `status` (after `delay` seconds); then 200."""
        self._script.extend([(status, headers or {}, delay)] * times)

    def hang(self, *, times: int = 1) -> None:
        """The next `times` requests get no answer at all (the client's timeout ends them)."""
        self._script.extend([(HANG, {}, 0.0)] * times)

    @property
    def delivered(self) -> list[Received]:
        """The requests the sink accepted (answered 2xx)."""
        return [r for r in self.received if r.status is not None and 200 <= r.status < 300]

    @contextlib.asynccontextmanager
    async def refusing(self) -> AsyncIterator[None]:
        """While the block runs, a connection to the sink's port is refused (the port stays held
        bound, not listening, so nothing else takes it); then the sink listens there again."""
        await self._site.stop()
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as held:
            held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            held.bind(("127.0.0.1", self._port))
            yield
        await self._listen(self._port)

    async def _handle(self, request: web.Request) -> web.Response:
        got = Received(request.path, CIMultiDict(request.headers), await request.read())
        self.received.append(got)
        status, headers, delay = self._script.pop(0) if self._script else (200, {}, 0.0)
        if status == HANG:
            await self._closing.wait()
            status = 504
        if delay:
            await asyncio.sleep(delay)
        got.status = status
        response = web.json_response({"ok": 200 <= status < 300}, status=status, headers=headers)
        response.force_close()
        return response

    async def _listen(self, port: int) -> None:
        self._site = web.TCPSite(self._runner, "127.0.0.1", port, reuse_address=True)
        await self._site.start()
        self._port = self._site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def __aenter__(self) -> Sink:
        self._closing = asyncio.Event()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await self._listen(0)
        self.url = f"http://127.0.0.1:{self._port}"
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self._closing.set()
        await self._runner.cleanup()
