"""`GET /v1/events/{id}`: the sender reads a loop's status (status token or admin bearer)."""

from __future__ import annotations

from aiohttp import web

from receivers import SENDERS
from relay.errors import BadRequestError, ForbiddenError
from relay.keys import EVENT_ID, TOKENS, VIEWS
from relay.web.auth import require_admin

_SOURCES = " or ".join(f"'{name}'" for name in SENDERS)
#: an event id on a log line is cut here: the path is the caller's, and no stored id is longer
MAX_LOGGED_ID = 200


async def handle_event_status(request: web.Request) -> web.Response:
    event_id = request.match_info["event_id"]
    request[EVENT_ID] = event_id[:MAX_LOGGED_ID]
    source = request.query.get("source")
    if source is not None and source not in SENDERS:
        raise BadRequestError(f"source must be {_SOURCES}.")
    token = request.query.get("token")
    if token is not None:
        opened = request.app[TOKENS].read_status_token(token)
        if opened is None or opened[1] != event_id or (source is not None and source != opened[0]):
            raise ForbiddenError("This status token does not open this event; use the status_url from the 202.")
        source = opened[0]
    else:
        require_admin(request)
    return web.json_response(await request.app[VIEWS].event_status(event_id, source))
