"""How the relay listens: aiohttp's server, with bounds that a slow or crowding client cannot pass.

`make_runner(app)` is the one way the relay is served: by `care-relay serve` (through
`run`), by the tests' test server and by `tests.support.ServerThread`, so what the tests
exercise is what runs.

- An open connection with no request under way, or whose request head is still arriving,
  is closed after `RELAY_IDLE_TIMEOUT_SEC` (aiohttp's keep-alive timer, which also runs
  from the moment a connection opens).
- One client address holds at most `RELAY_MAX_CONNECTIONS_PER_CLIENT` open connections;
  the next is answered 429 `rate_limited` and closed before anything of it is read.
  Behind a reverse proxy the proxy is that one client (see deploy/reverse-proxy.md).
- Malformed HTTP (request line, headers, body framing) gets the contract's JSON 400,
  echoes nothing of the request back, and is logged as one line without a traceback.

A body's arrival is bounded by the errors middleware (`RELAY_BODY_TIMEOUT_SEC`).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import signal
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.web_request import BaseRequest

from relay.errors import BadRequestError, InternalError, RateLimitedError
from relay.keys import DRAINING, ON_DRAIN, OUTBOX, SETTINGS
from relay.web.middleware import json_error, request_id

log = logging.getLogger("care_relay.http")

#: seconds a refused client is asked to wait: long enough for its other requests to finish.
RETRY_AFTER_SEC = 5
MALFORMED = "The request is not valid HTTP/1.1 (request line, headers or body framing); fix the client and retry."


def _too_many() -> bytes:
    """The 429 as bytes: it goes out before anything of the connection is read."""
    error = RateLimitedError(
        "This address has too many connections open to the relay; reuse or close them, and retry after Retry-After.",
        retry_after=RETRY_AFTER_SEC,
    )
    body = json.dumps(error.body()).encode()
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "Content-Length": str(len(body)),
        **error.headers(),
        "Cache-Control": "no-store",
        "Connection": "close",
    }
    head = "HTTP/1.1 429 Too Many Requests\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    return head.encode() + body


TOO_MANY = _too_many()
#: how long a refused connection stays open after its 429, its input read and dropped: a
#: socket closed with unread input is reset, and the client would never see the answer
REFUSED_LINGER_SEC = 1.0


class ClientSlots:
    """Open connections per client address: only counted, never kept once closed."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._open: Counter[str] = Counter()
        #: addresses refused since they last had a free slot: one log line per episode, not per connection.
        self._refusing: set[str] = set()

    def take(self, address: str) -> bool:
        if self._limit and self._open[address] >= self._limit:
            if address not in self._refusing:
                self._refusing.add(address)
                log.warning(
                    "client %s holds %d connections (RELAY_MAX_CONNECTIONS_PER_CLIENT); refusing more",
                    address,
                    self._limit,
                )
            return False
        self._open[address] += 1
        return True

    def give_back(self, address: str) -> None:
        self._open[address] -= 1
        if self._open[address] <= 0:
            del self._open[address]
        self._refusing.discard(address)


def _address_of(transport: asyncio.BaseTransport) -> str | None:
    peer = transport.get_extra_info("peername")
    return str(peer[0]) if isinstance(peer, tuple) and peer else None


class BoundedRequestHandler(web.RequestHandler):
    """aiohttp's connection handler, holding a client slot while open, answering malformed HTTP in JSON."""

    __slots__ = ("_address", "_refused", "_slots")

    def __init__(self, manager: web.Server, *, slots: ClientSlots, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._slots = slots
        self._address: str | None = None
        self._refused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        address = _address_of(transport)
        if address is None:
            return
        if self._slots.take(address):
            self._address = address
            return
        # Nothing it sends is read as a request: the answer goes out, our side closes for
        # writing, and what the client still sends is dropped until the linger ends.
        self._refused = True
        transport.write(TOO_MANY)  # type: ignore[attr-defined]
        if transport.can_write_eof():  # type: ignore[attr-defined]
            transport.write_eof()  # type: ignore[attr-defined]
        asyncio.get_running_loop().call_later(REFUSED_LINGER_SEC, transport.close)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        super().data_received(data)

    def connection_lost(self, exc: BaseException | None) -> None:
        # Given back before the socket closes: a client that saw the close finds the slot free.
        if self._address is not None:
            self._slots.give_back(self._address)
            self._address = None
        super().connection_lost(exc)

    def handle_error(
        self, request: BaseRequest, status: int = 500, exc: BaseException | None = None, message: str | None = None
    ) -> web.StreamResponse:
        """The answer when aiohttp cannot hand a request to the app, or the app raised past its
        middleware. (aiohttp's own is plain text quoting the offending bytes, and logs a
        traceback for each.) The connection closes after it."""
        if request.writer.output_size > 0:
            raise ConnectionError("an answer was already under way")  # as aiohttp: nothing more can be said
        rid = request_id(None)  # the request's own headers did not reach the app: nothing of them is echoed
        if status < 500:
            # the parser's message quotes the request's bytes: only the kind of fault is logged
            log.warning(
                "malformed HTTP from %s refused: %s", request.remote, type(exc).__name__, extra={"request_id": rid}
            )
            response = json_error(BadRequestError(MALFORMED))
        else:  # a fault of the relay's own: its traceback is what an operator needs
            log.error(
                "unhandled error serving a request: %s", type(exc).__name__, exc_info=exc, extra={"request_id": rid}
            )
            response = json_error(InternalError())
        response.headers["X-Request-Id"] = rid
        response.force_close()
        return response


class BoundedServer(web.Server):
    """aiohttp's Server, handing each connection to a BoundedRequestHandler."""

    def __init__(
        self, handler: Callable[[BaseRequest], Awaitable[web.StreamResponse]], *, slots: ClientSlots, **kwargs: Any
    ) -> None:
        super().__init__(handler, **kwargs)
        self._slots = slots

    def __call__(self) -> web.RequestHandler:
        return BoundedRequestHandler(self, loop=self._loop, slots=self._slots, **self._kwargs)


class RelayRunner(web.AppRunner):
    """aiohttp's AppRunner (the app's start-up and clean-up) serving through a BoundedServer."""

    async def _make_server(self) -> web.Server:
        plain = await super()._make_server()  # starts the app, and builds the server aiohttp would use
        return BoundedServer(
            plain.request_handler,
            request_factory=plain.request_factory,
            slots=ClientSlots(self.app[SETTINGS].relay_max_connections_per_client),
            **self._kwargs,  # the runner's options (handler_cancellation, timeouts, logging), as aiohttp passes them
        )


def make_runner(app: web.Application, **kwargs: Any) -> web.AppRunner:
    """The runner for every server of the relay; `kwargs` go to aiohttp's AppRunner."""
    options: dict[str, Any] = {
        "access_log": None,
        "keepalive_timeout": app[SETTINGS].relay_idle_timeout_sec,
        # Bodies are taken as sent: signatures cover those bytes, a decoded body is not what was
        # signed (relay/web/hooks.py refuses it with 415), and nothing is inflated that nobody reads.
        "auto_decompress": False,
    }
    return RelayRunner(app, **{**options, **kwargs})


def run(app: web.Application, host: str, port: int, *, on_listening: Callable[[], None] | None = None) -> None:
    """Serve `app` on host:port until SIGINT or SIGTERM, then drain (`drain`) and clean up; returns normally."""

    async def serve() -> None:
        grace = app[SETTINGS].relay_shutdown_grace_sec
        runner = make_runner(app, shutdown_timeout=grace)
        await runner.setup()
        try:
            if not 0 <= port <= 65535:
                # asyncio's loop refuses such a port; uvloop's would wrap it round to another one
                raise OverflowError(f"port {port} is out of range")
            await web.TCPSite(runner, host, port).start()
            # the port actually bound (port 0 asks the system for a free one)
            log.info("listening on %s", ", ".join(f"http://{a[0]}:{a[1]}" for a in runner.addresses))
            stopping = asyncio.Event()
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError):  # no signal handlers on Windows' loop
                    loop.add_signal_handler(signum, stopping.set)
            if on_listening is not None:
                on_listening()
            settle_the_heap()
            await stopping.wait()
            await drain(app, runner)
        finally:
            await runner.cleanup()  # then requests still in flight get the grace, and the app is closed

    with contextlib.suppress(KeyboardInterrupt), asyncio.Runner(loop_factory=_loop_factory()) as runner:
        runner.run(serve())


def settle_the_heap() -> None:
    """What starting made (modules, settings, the directory, templates, catalogs) lives as long
    as the process: it is moved out of the cyclic collector's way (`gc.freeze`), so a collection
    walks only what requests made. Measured with `perf` on the pending path, the collector had
    taken 13 % of the relay's CPU walking that start-up heap again and again."""
    gc.collect()
    gc.freeze()


async def drain(app: web.Application, runner: web.BaseRunner) -> None:
    """The start of a shutdown: /readyz answers 503, the listener stops accepting (open connections
    are still answered), and the outbox stops claiming and gives its sends in flight
    RELAY_SHUTDOWN_GRACE_SEC before it releases what it claimed and did not send."""
    grace = app[SETTINGS].relay_shutdown_grace_sec
    log.info("shutting down: no new connections; requests and sends in flight get %gs", grace)
    app[DRAINING].set()
    for site in list(runner.sites):
        await site.stop()
    for stop_taking in app[ON_DRAIN]:
        await stop_taking()
    await app[OUTBOX].stop(grace)


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop where it installs (Linux and macOS): the same asyncio API on libuv, measured
    cheaper per request by `make bench`; asyncio's own loop elsewhere."""
    try:
        import uvloop  # noqa: PLC0415  (optional: not built for every platform)
    except ImportError:
        return None
    return uvloop.new_event_loop
