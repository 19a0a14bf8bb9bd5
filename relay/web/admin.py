"""`/admin/*`: the directory, consent grants, the inbox, the outbox and the audit trail (bearer tokens)."""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from receivers import SENDERS
from receivers.json_body import loads
from relay.errors import BadRequestError, MalformedJsonError
from relay.forms import checked_by
from relay.keys import DELIVERIES, DIRECTORY, INSTRUCTIONS, VIEWS
from relay.model import LOOP_STATUSES
from relay.web.auth import ADMIN_NAME, require_admin

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
PAGE_MAX = 200


def admin(handler: Handler) -> Handler:
    async def guarded(request: web.Request) -> web.StreamResponse:
        require_admin(request)
        return await handler(request)

    guarded.__name__ = handler.__name__
    return guarded


async def _json_body(request: web.Request) -> Any:
    raw = await request.read()
    try:
        return loads(raw or b"{}")
    except (ValueError, RecursionError):
        raise MalformedJsonError() from None


def _cursor_in(request: web.Request) -> int | None:
    cursor = request.query.get("cursor")
    if not cursor:
        return None
    invalid = BadRequestError("This cursor is not valid; pass next_cursor from the previous page as it was.")
    try:
        value = int(base64.urlsafe_b64decode(cursor.encode() + b"==").decode())
    except ValueError:
        raise invalid from None
    if not 0 < value < 2**63:  # a row id; anything else cannot have come from a page
        raise invalid
    return value


def _cursor_out(rows: list[dict[str, Any]], limit: int) -> str | None:
    if len(rows) < limit:
        return None
    return base64.urlsafe_b64encode(str(rows[-1]["row"]).encode()).decode().rstrip("=")


def _limit(request: web.Request) -> int:
    try:
        limit = int(request.query.get("limit", "50"))
    except ValueError:
        raise BadRequestError("limit must be a whole number from 1 to 200.") from None
    if not 1 <= limit <= PAGE_MAX:
        raise BadRequestError("limit must be a whole number from 1 to 200.")
    return limit


@admin
async def handle_list_agents(request: web.Request) -> web.Response:
    agents = await request.app[DIRECTORY].agents()
    return web.json_response({"items": agents, "next_cursor": None})


@admin
async def handle_create_agent(request: web.Request) -> web.Response:
    agent = await request.app[DIRECTORY].add_agent(await _json_body(request))
    return web.json_response(agent, status=201)


@admin
async def handle_get_agent(request: web.Request) -> web.Response:
    return web.json_response(await request.app[DIRECTORY].agent(request.match_info["agent_id"]))


def _named_by(request: web.Request, given: Any) -> str | None:
    """Who acts when the bearer is a RELAY_ADMINS token: its name, whatever else asks (None for an
    unnamed RELAY_ADMIN_TOKENS token). A `by` that names the same admin agrees; another is 400, so
    nobody's action is ever recorded as someone else's."""
    name: str | None = request.get(ADMIN_NAME)
    if name is None:
        return None
    if given is not None and not (isinstance(given, str) and given.strip().casefold() in ("", name.casefold())):
        raise BadRequestError(
            f"This admin token already names who acts ({name}), so 'by' cannot name someone else; leave it out."
        )
    return name


def _by(request: web.Request, default: str = "") -> str:
    """Who acts, for a route that takes `?by=`: the bearer's RELAY_ADMINS name, else `?by=`, else `default`."""
    given = request.query.get("by")
    return _named_by(request, given) or given or default


def _by_in_body(request: web.Request, data: Any) -> Any:
    """A body that names who acts in `by`: a RELAY_ADMINS bearer's name goes in (400 for another)."""
    if isinstance(data, dict) and (name := _named_by(request, data.get("by"))) is not None:
        data["by"] = name
    return data


@admin
async def handle_patch_agent(request: web.Request) -> web.Response:
    """Change some fields; who sets an agent away or back is audited: the bearer's RELAY_ADMINS name, else
    `?by=NAME`, else "admin"."""
    by = checked_by(_named_by(request, request.query.get("by")) or request.query.get("by", "admin"))
    agent = await request.app[DIRECTORY].patch_agent(request.match_info["agent_id"], await _json_body(request), by=by)
    return web.json_response(agent)


@admin
async def handle_invite_now(request: web.Request) -> web.Response:
    """Invite now: `{"agents": ["bob"], "by": "NAME"}` for a loop not done (CONTRACT section 10); 202.
    A RELAY_ADMINS bearer is who asks: `by` may be left out."""
    source = request.query.get("source")
    if source is not None and source not in SENDERS:
        raise BadRequestError(f"source must be one of {', '.join(SENDERS)}.")
    data = _by_in_body(request, await _json_body(request))
    result = await request.app[INSTRUCTIONS].invite_now(request.match_info["event_id"], data, source=source)
    return web.json_response(result, status=202)


@admin
async def handle_verify_agent(request: web.Request) -> web.Response:
    """Send a new join code to the agent's unconfirmed addresses; `{"channel": "sms"}` names one."""
    data = await _json_body(request)
    if not isinstance(data, dict) or set(data) - {"channel"} or not isinstance(data.get("channel", ""), str):
        raise BadRequestError('The body is optional; when given it is {"channel": "slack" | "sms" | "whatsapp"}.')
    result = await request.app[DIRECTORY].verify(request.match_info["agent_id"], data.get("channel"))
    return web.json_response(result, status=202)


@admin
async def handle_delete_agent(request: web.Request) -> web.Response:
    await request.app[DIRECTORY].remove_agent(request.match_info["agent_id"])
    return web.Response(status=204)


@admin
async def handle_list_consents(request: web.Request) -> web.Response:
    grants = await request.app[DIRECTORY].grants(request.query.get("subject"))
    return web.json_response({"items": grants, "next_cursor": None})


@admin
async def handle_create_consent(request: web.Request) -> web.Response:
    grant = await request.app[DIRECTORY].grant_consent(_by_in_body(request, await _json_body(request)))
    return web.json_response(grant, status=201)


@admin
async def handle_revoke_consent(request: web.Request) -> web.Response:
    await request.app[DIRECTORY].revoke_consent(request.match_info["grant_id"], _by(request, "admin-api"))
    return web.Response(status=204)


@admin
async def handle_inbox(request: web.Request) -> web.Response:
    statuses = [s for s in request.query.get("status", "").split(",") if s]
    unknown = [s for s in statuses if s not in LOOP_STATUSES]
    if unknown:
        raise BadRequestError(f"Unknown status '{unknown[0]}'; use one of: {', '.join(LOOP_STATUSES)}.")
    limit = _limit(request)
    rows = await request.app[VIEWS].inbox_page(statuses=statuses, before_id=_cursor_in(request), limit=limit)
    items = [{k: v for k, v in r.items() if k != "row"} for r in rows]
    return web.json_response({"items": items, "next_cursor": _cursor_out(rows, limit)})


@admin
async def handle_audit(request: web.Request) -> web.Response:
    limit = _limit(request)
    rows = await request.app[VIEWS].audit_page(before_id=_cursor_in(request), limit=limit)
    items = [{k: v for k, v in r.items() if k != "row"} for r in rows]
    return web.json_response({"items": items, "next_cursor": _cursor_out(rows, limit)})


def _listed(request: web.Request, name: str) -> list[str]:
    """A query value that may name several, comma-separated (`?status=failed,pending`)."""
    return [part for value in request.query.getall(name, []) for part in value.split(",")]


@admin
async def handle_outbox(request: web.Request) -> web.Response:
    limit = _limit(request)
    rows = await request.app[DELIVERIES].page(
        statuses=_listed(request, "status"), kinds=_listed(request, "kind"), before_id=_cursor_in(request), limit=limit
    )
    items = [{k: v for k, v in r.items() if k != "row"} for r in rows]
    return web.json_response({"items": items, "next_cursor": _cursor_out(rows, limit)})


@admin
async def handle_outbox_retry(request: web.Request) -> web.Response:
    row = await request.app[DELIVERIES].retry(request.match_info["outbox_id"], _by(request))
    return web.json_response(row, status=202)
