"""A local HTTP sink that records what it is sent and answers as told (callbacks, workflow engines)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from multidict import CIMultiDict


@dataclass
class Received:
    path: str
    headers: CIMultiDict[str]
    body: bytes


@dataclass
class Sink:
    """`async with Sink() as sink:`; `sink.url`; `sink.answer(500, times=2)`; `sink.received`."""

    received: list[Received] = field(default_factory=list)
    _script: list[tuple[int, dict[str, str], float]] = field(default_factory=list)
    url: str = ""

    def answer(self, status: int, *, times: int = 1, headers: dict[str, str] | None = None, delay: float = 0.0) -> None:
        """The next `times` requests get `status` (after `delay` seconds); then 200."""
        self._script.extend([(status, headers or {}, delay)] * times)

    async def _handle(self, request: web.Request) -> web.Response:
        self.received.append(Received(request.path, CIMultiDict(request.headers), await request.read()))
        status, headers, delay = self._script.pop(0) if self._script else (200, {}, 0.0)
        if delay:
            await asyncio.sleep(delay)
        return web.json_response({"ok": 200 <= status < 300}, status=status, headers=headers)

    async def __aenter__(self) -> Sink:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self._runner.cleanup()
