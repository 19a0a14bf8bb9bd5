"""The one place errors become responses, and one log line and one count per request.

Before any handler runs, the whole body is received, within `RELAY_BODY_TIMEOUT_SEC`
(else 408 `request_timeout`): no handler waits on a client that stalls, and every
handler reads the body from memory. Every `RelayError` renders as the contract's JSON;
aiohttp's own HTTP errors (unknown route, wrong method) get the same shape; a storage
failure is a 503 with Retry-After, never a silent drop; anything else is logged (type
only, never the body) as a 500. No answer may be cached (`Cache-Control: no-store`).

Every request gets an id: its `X-Request-Id` when that is 1 to 64 of `[A-Za-z0-9._-]`, else
one made here; it is echoed on the answer (errors too) and is on the request's log line
(`care_relay.request`: method, route template, status, duration, and the event it concerns).
Probes and scrapes (`/healthz`, `/readyz`, `/metrics`) log at DEBUG unless they fail.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

from relay import audit, logs
from relay.errors import (
    BadRequestError,
    InternalError,
    PayloadTooLargeError,
    RelayError,
    RequestTimeoutError,
    UnavailableError,
)
from relay.keys import EVENT_ID, METRICS, REQUEST_ID, SETTINGS
from relay.metrics import UNMATCHED
from relay.web import pages

log = logging.getLogger("care_relay.http")
#: one line per request
request_log = logging.getLogger("care_relay.request")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}
_GIVEN_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
#: routes asked every few seconds by machines: their lines only at DEBUG, unless they fail
QUIET_ROUTES = frozenset({"/healthz", "/readyz", "/metrics"})


def request_id(given: str | None) -> str:
    """The caller's X-Request-Id when it is 1 to 64 of [A-Za-z0-9._-]; else a fresh one."""
    if given is not None and _GIVEN_ID.fullmatch(given):
        return given
    return os.urandom(8).hex()


def json_error(error: RelayError) -> web.Response:
    """An error as the contract's JSON (also where no request could be read)."""
    return web.json_response(error.body(), status=error.status, headers=error.headers())


def render(request: web.Request, error: RelayError) -> web.Response:
    """The one error renderer: the contract's JSON, or the HTML error page on a page route."""
    return _closing(pages.error_page(request, error) if pages.wants_page(request) else json_error(error), error)


def _closing(response: web.Response, error: RelayError) -> web.Response:
    if error.closes_connection:
        response.force_close()
    return response


async def receive_body(request: web.Request) -> None:
    """Wait, at most RELAY_BODY_TIMEOUT_SEC, until the whole body has arrived.

    `request.read()` keeps the bytes: `read()`, `text()`, `json()` and `post()` in the
    handler then answer from memory at once.
    """
    if not request.can_read_body:
        return
    settings = request.app[SETTINGS]
    too_large = PayloadTooLargeError.over(settings.relay_max_body_bytes)
    if request.content_length is not None and request.content_length > request.client_max_size:
        raise too_large  # refused unread: waiting for it would only hold the connection
    try:
        async with asyncio.timeout(settings.relay_body_timeout_sec):
            await request.read()
    except TimeoutError:
        # The rest of the body is never read. Without this, aiohttp would go on reading and
        # discarding it after the answer (for up to its lingering time); a TimeoutError from
        # the stream ends that at once, and the connection closes after the 408.
        request.content.set_exception(TimeoutError())
        raise RequestTimeoutError(settings.relay_body_timeout_sec) from None
    except web.HTTPRequestEntityTooLarge:
        raise too_large from None
    except web.RequestPayloadError:  # broken chunked framing
        raise BadRequestError("The body could not be read (its chunked framing is broken); send it again.") from None
    except ConnectionError:  # the client left: this answer reaches no one, it only ends the request
        raise BadRequestError("The connection closed before the body arrived.") from None


def errors_middleware(storage_errors: tuple[type[BaseException], ...]) -> Middleware:
    """The middleware; `storage_errors` are what the storage in use raises when it cannot answer (503)."""

    @web.middleware
    async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        request[REQUEST_ID] = request_id(request.headers.get("X-Request-Id"))
        try:
            await receive_body(request)
        except RelayError as error:
            # no handler ran: the transfer itself failed (too large, too slow), and no page was asked for yet
            _rejected(request, error.status, error.code)
            refused = _closing(json_error(error), error)
            _finish(request, refused, started)
            return refused
        response: web.StreamResponse
        try:
            response = await handler(request)
        except RelayError as error:
            response = render(request, error)
            _rejected(request, error.status, error.code)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            response = _http_error(request, exc)
        except storage_errors as exc:
            log.error(
                "storage unavailable on %s %s: %s",
                request.method,
                route_of(request),
                type(exc).__name__,
                extra={"request_id": request[REQUEST_ID]},
            )
            response = render(request, UnavailableError())
            request.app[METRICS].storage_unavailable.inc()
        except Exception:
            log.exception(
                "unhandled error on %s %s", request.method, route_of(request), extra={"request_id": request[REQUEST_ID]}
            )
            # a fault of ours, not something a page can word for the person: the contract's JSON 500
            response = json_error(InternalError())
        _finish(request, response, started)
        return response

    return errors


def _http_error(request: web.Request, exc: web.HTTPException) -> web.Response:
    """aiohttp's own errors (unknown route, wrong method) in the contract's shape."""
    code = _HTTP_CODES.get(exc.status, "bad_request")
    detail = {
        404: "No such route; see the README for the HTTP API.",
        405: f"{request.method} is not allowed here.",
    }.get(exc.status, exc.reason)
    _rejected(request, exc.status, code)
    return web.json_response({"error": code, "detail": detail}, status=exc.status)


def _finish(request: web.Request, response: web.StreamResponse, started: float) -> None:
    seconds = time.perf_counter() - started
    rid = request[REQUEST_ID]
    if not response.prepared:
        # Answers carry care data (status documents, admin lists, action-link pages) or tokens
        # (the intake's status_url); none is meant to be kept by a browser or a proxy.
        response.headers.setdefault("Cache-Control", "no-store")
        response.headers["X-Request-Id"] = rid
    route = route_of(request)
    status = response.status
    request.app[METRICS].request(request.method, route, status, seconds)
    level = logging.WARNING if status >= 500 else logging.DEBUG if route in QUIET_ROUTES else logging.INFO
    logs.log_line(
        request_log,
        level,
        f"{request.method} {route} {status}",
        {
            "request_id": rid,
            "method": request.method,
            "route": route,
            "status": status,
            "duration_ms": round(seconds * 1000, 2),
            "event_id": request.get(EVENT_ID),
        },
    )


def route_of(request: web.Request) -> str:
    """The route's template, never the path: action links and event ids carry tokens and ids."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else UNMATCHED


def _rejected(request: web.Request, status: int, code: str) -> None:
    request.app[METRICS].rejections.labels(code).inc()
    if request.path.startswith("/hooks/"):
        audit.emit({"kind": "rejected", "path": request.path, "status": status, "error": code})
