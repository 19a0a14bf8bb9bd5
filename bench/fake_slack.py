"""A fake Slack Web API for the bench, in a process of its own: `python -m bench.fake_slack PORT`.

It answers what the relay's Slack channel calls through slack_sdk's AsyncWebClient
(`POST /api/<method>`: arguments in the query string or a JSON body, as
tests/fakes/slack.py describes): `auth.test`, `conversations.open` (a DM per user) and
`chat.postMessage` / `chat.update` (ok, channel, ts). For each chat.postMessage it records
when it arrived (time.monotonic, CLOCK_MONOTONIC: comparable across processes on Linux)
and which signal it is for, found as the bench marker in the message text.

`GET /bench/arrivals` answers `{"counts": {method: n}, "arrivals": [[event id, t], ...]}`.
"""

from __future__ import annotations

import itertools
import json
import re
import sys
import time
from collections import Counter

from aiohttp import web

MARKER = re.compile(r"bench (evt_[0-9a-f]+)")
COUNTS: web.AppKey[Counter[str]] = web.AppKey("counts", Counter)
ARRIVALS: web.AppKey[list[tuple[str, float]]] = web.AppKey("arrivals", list)
_TS = itertools.count(1)


async def handle_api(request: web.Request) -> web.Response:
    arrived = time.monotonic()
    method = request.match_info["method"]
    request.app[COUNTS][method] += 1
    params: dict[str, object] = dict(request.query)
    raw = await request.read()
    if raw and request.content_type == "application/json":
        params.update(json.loads(raw))
    if method == "auth.test":
        return web.json_response({"ok": True, "user_id": "U0BENCHBOT", "team_id": "T0BENCH", "bot_id": "B0BENCH"})
    if method == "conversations.open":
        return web.json_response({"ok": True, "channel": {"id": f"D{params.get('users', '')}"}})
    if method in ("chat.postMessage", "chat.update"):
        if method == "chat.postMessage":
            found = MARKER.search(str(params.get("text", "")))
            request.app[ARRIVALS].append((found.group(1) if found else "", arrived))
        ts = params.get("ts") or f"{int(time.time())}.{next(_TS) % 1_000_000:06d}"
        return web.json_response({"ok": True, "channel": params.get("channel"), "ts": ts})
    return web.json_response({"ok": False, "error": "unknown_method"})


async def handle_arrivals(request: web.Request) -> web.Response:
    return web.json_response({"counts": dict(request.app[COUNTS]), "arrivals": request.app[ARRIVALS]})


def make_app() -> web.Application:
    app = web.Application()
    app[COUNTS] = Counter()
    app[ARRIVALS] = []
    app.router.add_post("/api/{method}", handle_api)
    app.router.add_get("/bench/arrivals", handle_arrivals)
    return app


if __name__ == "__main__":
    web.run_app(make_app(), host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
