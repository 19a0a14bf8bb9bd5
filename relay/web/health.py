"""`/healthz` (the process answers) and `/readyz` (it can take traffic)."""

from __future__ import annotations

from aiohttp import web

from relay import readiness
from relay.keys import DRAINING, ENGINE, WRITER


async def handle_healthz(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


async def handle_readyz(request: web.Request) -> web.Response:
    """200 when ready; else 503 with what is wrong and Retry-After (also while shutting down)."""
    if request.app[DRAINING].is_set():
        return web.json_response(
            {
                "ok": False,
                "database": "draining",
                "error": "unavailable",
                "detail": "The relay is shutting down: requests and sends in flight are finishing; use another replica.",
            },
            status=503,
            headers={"Retry-After": "5"},
        )
    state = await readiness.check(request.app[WRITER], request.app[ENGINE])
    if state.ok:
        return web.json_response({"ok": True, "database": state.database})
    return web.json_response(
        {"ok": False, "database": state.database, "error": "unavailable", "detail": state.detail},
        status=503,
        headers={"Retry-After": "5"},
    )
