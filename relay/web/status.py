"""`GET /v1/events/{id}`: the sender reads a loop's status (status token or admin bearer)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from inbox import store
from receivers import SENDERS
from relay.errors import BadRequestError, ForbiddenError, NotFoundError
from relay.model import iso
from relay.state import ENGINE, TOKENS
from relay.web.auth import require_admin

_SOURCES = " or ".join(f"'{name}'" for name in SENDERS)
_SOURCE_QUERIES = " or ".join(f"?source={name}" for name in SENDERS)


async def handle_event_status(request: web.Request) -> web.Response:
    event_id = request.match_info["event_id"]
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
    engine = request.app[ENGINE]
    signals = await store.find_signals(engine, event_id, source)
    if not signals:
        raise NotFoundError("No event with this id was received.")
    if len(signals) > 1:
        raise BadRequestError(f"Two sources used this id; add {_SOURCE_QUERIES}.")
    return web.json_response(await describe(engine, signals[0]))


async def describe(engine: Any, signal: store.StoredSignal) -> dict[str, Any]:
    """The contract's view of one loop."""
    detail = await store.loop_detail(engine, signal.id)
    acks = [
        {
            "type": "care.ack",
            "ts": iso(a["at"]),
            "for": signal.event_id,
            "by": {"id": a["agent"], "display": a["display"]},
            "action": a["action"],
        }
        for a in detail["acks"]
    ]
    done = detail["done"]
    return {
        "id": signal.event_id,
        "source": signal.source,
        "type": signal.type,
        "status": signal.status,
        "received_at": iso(signal.received_at),
        "decision": {
            "reason": signal.reason,
            "gates": signal.gate_failures,
            "action_origin": signal.action_origin,
            "policy_gate_result": signal.policy_gate_result,
            "origin_uncertain": signal.origin_uncertain,
        },
        "invitations": [
            {"agent": i["agent"], "channel": i["channel"] or None, "status": i["status"]} for i in detail["invitations"]
        ],
        "acks": acks,
        "done": None
        if done is None
        else {
            "type": "care.done",
            "ts": iso(done["at"]),
            "for": signal.event_id,
            "by": {"id": done["agent"], "display": done["display"]},
            "outcome": done["outcome"],
            "note": done["note"],
        },
    }
