"""The baseline: a bare aiohttp handler that reads the body and answers 202."""

from __future__ import annotations

import sys

from aiohttp import web


async def handle(request: web.Request) -> web.Response:
    await request.read()
    return web.json_response({"id": "x", "status": "received", "duplicate": False}, status=202)


if __name__ == "__main__":
    app = web.Application()
    app.router.add_post("/hooks/m3", handle)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
