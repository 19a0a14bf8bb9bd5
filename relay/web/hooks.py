"""`POST /hooks/<sender>`: bytes → verify → parse → intake → 202, for every sender in `SENDERS`.

Checks run in the contract's order and the first failure answers: body size (413) →
content encoding and type (415) → signature and timestamp (401) → JSON (400) → header agreement
(400) → payload schema (422) → replay (200 duplicate / 409). A body that is JSON but not
an object has no fields to hold the headers against: it is the schema's 422 at once.
"""

from __future__ import annotations

from urllib.parse import quote

from aiohttp import web

from receivers import Sender
from receivers.json_body import parse_json
from receivers.schema import require_object
from relay.bodies import media_type, read_body
from relay.errors import UnsupportedMediaTypeError
from relay.keys import CLOCK, EVENT_ID, INTAKE, METRICS, SETTINGS, TOKENS
from relay.web.consent import consent_url
from relay.web.requests import Handler


def status_url(request: web.Request, source: str, event_id: str) -> str:
    """The path, with its status token, where the sender reads this loop (`GET /v1/events/{id}`)."""
    token = request.app[TOKENS].status_token(source, event_id)
    return f"/v1/events/{quote(event_id, safe='')}?token={token}"


def handler_for(sender: Sender) -> Handler:
    """The request handler of one sender's hook."""

    async def handle_signal(request: web.Request) -> web.StreamResponse:
        settings = request.app[SETTINGS]
        body = await read_body(request, settings.relay_max_body_bytes)
        if media_type(request) != "application/json":
            raise UnsupportedMediaTypeError()
        now = int(request.app[CLOCK]())
        window = sender.max_window(settings)
        ts = sender.verify(request.headers, body, sender.secrets(settings), now=now, max_window_sec=window)
        fast = sender.parse_fast(body)
        if fast is not None:
            checked, signal = fast
            sender.check(request.headers, checked, ts=ts, now=now, max_window_sec=window)
        else:
            # not an object: no fields to hold the headers against, so the schema's 422 answers
            payload = require_object(parse_json(body))
            sender.check(request.headers, payload, ts=ts, now=now, max_window_sec=window)
            signal = sender.parse(payload)
        request[EVENT_ID] = signal.event_id
        result = await request.app[INTAKE].receive(signal, body)
        request.app[METRICS].signal(result.source, result.status, result.duplicate, result.decision)
        answer = {
            "id": result.event_id,
            "status": result.status,
            "duplicate": result.duplicate,
            "status_url": status_url(request, result.source, result.event_id),
        }
        if result.joined_to is not None:  # CONTRACT section 10: the open loop this signal joined
            answer["joined_to"] = result.joined_to
        # CONTRACT section 10: the actor's own consent page
        if result.consent_groups and result.received_at is not None:
            url = consent_url(request, result.source, result.event_id, result.received_at / 1000)
            if url is not None:
                answer["consent_url"] = url
        return web.json_response(answer, status=200 if result.duplicate else 202)

    handle_signal.__name__ = f"handle_{sender.name}"
    return handle_signal
