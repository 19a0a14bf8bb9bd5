"""The listening server over real sockets: slow bodies, idle and crowding clients, malformed HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator

import pytest

from tests import raw_http
from tests.driver import Relay, Start, panic
from tests.support import ServerThread, make_settings, signed

#: appears only inside the malformed part of a request: the answer must never carry it back.
MARKER = "SECRET-TOKEN-4711"


def trouble(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """Log records an operator would have to look at: errors, and anything with a traceback."""
    return [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


# Bodies that do not arrive ---------------------------------------------------------------


@pytest.mark.parametrize("path", ["/hooks/m3", "/hooks/aisha", "/a/some-link", "/admin/agents", "/no/such/route"])
async def test_a_body_that_stalls_gets_408_and_the_connection_closes(
    start: Start, caplog: pytest.LogCaptureFixture, path: str
) -> None:
    """Headers, then part of the body, then nothing: 408 request_timeout as JSON, the connection closed, no traceback."""
    caplog.set_level(logging.INFO)
    relay = await start(dev=False, run_outbox=True, relay_body_timeout_sec=0.5)
    head = raw_http.request("POST", path, {"Content-Type": "application/json", "Content-Length": "1000"})
    reader, writer = await raw_http.connect(relay.client.host, relay.client.port)
    try:
        writer.write(head + b'{"id": "evt_')
        await writer.drain()
        answer = raw_http.parse(await raw_http.read_to_close(reader))
    finally:
        writer.close()
    assert answer.status == 408
    assert answer.headers["content-type"].startswith("application/json")
    body = answer.json()
    assert body["error"] == "request_timeout" and "second" in body["detail"]
    assert trouble(caplog) == []


async def test_a_body_sent_in_pieces_within_the_timeout_is_read_whole(start: Start) -> None:
    """A body that arrives in two parts in time reaches the handler whole: a signed signal is accepted."""
    relay = await start(dev=False, run_outbox=True)
    body, headers = signed("m3", panic())
    headers = {**headers, "Content-Length": str(len(body)), "Connection": "close"}
    reader, writer = await raw_http.connect(relay.client.host, relay.client.port)
    try:
        writer.write(raw_http.request("POST", "/hooks/m3", headers) + body[:20])
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(body[20:])
        await writer.drain()
        answer = raw_http.parse(await raw_http.read_to_close(reader))
    finally:
        writer.close()
    assert answer.status == 202, answer.body


# Connections held open --------------------------------------------------------------------


@pytest.mark.parametrize("sent", [b"", b"GET /healthz HT"], ids=["nothing", "half a request line"])
async def test_an_idle_connection_is_closed(start: Start, sent: bytes) -> None:
    """A connection that sends no complete request head is closed after RELAY_IDLE_TIMEOUT_SEC."""
    relay = await start(dev=False, run_outbox=True, relay_idle_timeout_sec=0.5)
    reader, writer = await raw_http.connect(relay.client.host, relay.client.port)
    try:
        writer.write(sent)
        await writer.drain()
        assert await raw_http.read_to_close(reader) == b""
    finally:
        writer.close()


@contextlib.asynccontextmanager
async def connections(relay: Relay, count: int) -> AsyncIterator[list[raw_http.Connection]]:
    """`count` connections to the server, each closed at the end."""
    opened = [await raw_http.connect(relay.client.host, relay.client.port) for _ in range(count)]
    try:
        yield opened
    finally:
        for _, writer in opened:
            writer.close()


async def healthz(relay: Relay) -> int:
    """The status of `GET /healthz` on a new connection."""
    close = {"Connection": "close"}
    return (
        await raw_http.exchange(relay.client.host, relay.client.port, raw_http.request("GET", "/healthz", close))
    ).status


async def test_one_client_holds_at_most_the_configured_connections(start: Start) -> None:
    """Past RELAY_MAX_CONNECTIONS_PER_CLIENT open connections, the next gets 429 rate_limited and is closed;
    a slot freed is a slot usable again."""
    relay = await start(dev=False, run_outbox=True, relay_max_connections_per_client=3)
    async with connections(relay, 3) as held:
        for reader, writer in held:  # each answered once: the server counts all three
            writer.write(raw_http.request("GET", "/healthz"))
            assert (await raw_http.read_response(reader)).status == 200
        refused = await raw_http.exchange(relay.client.host, relay.client.port, raw_http.request("GET", "/healthz"))
        assert refused.status == 429
        assert refused.json()["error"] == "rate_limited" and refused.json()["detail"]
        assert int(refused.headers["retry-after"]) > 0
        # the server closes one of them (its count drops before the socket closes) ...
        reader, writer = held[0]
        writer.write(raw_http.request("GET", "/healthz", {"Connection": "close"}))
        assert raw_http.parse(await raw_http.read_to_close(reader)).status == 200
        # ... and a new connection is served
        assert await healthz(relay) == 200


async def test_stalled_clients_cannot_crowd_out_others(start: Start) -> None:
    """Stalled bodies fill the client's slots only until they are answered 408; then requests are served again."""
    relay = await start(dev=False, run_outbox=True, relay_max_connections_per_client=4, relay_body_timeout_sec=0.5)
    head = raw_http.request("POST", "/hooks/m3", {"Content-Type": "application/json", "Content-Length": "500"})
    async with connections(relay, 4) as stalled:
        for _, writer in stalled:
            writer.write(head)
        answers = [raw_http.parse(await raw_http.read_to_close(reader)) for reader, _ in stalled]
        assert [a.status for a in answers] == [408] * 4
        assert await healthz(relay) == 200


# Malformed HTTP -----------------------------------------------------------------------------

MALFORMED = {
    "request line": f"GET /healthz {MARKER}/1.1\r\nHost: relay.test\r\n\r\n".encode(),
    "header name": f"GET /healthz HTTP/1.1\r\nHost: relay.test\r\nX {MARKER}: y\r\n\r\n".encode(),
    "header value": f"GET /healthz HTTP/1.1\r\nHost: relay.test\r\nX-Token: {MARKER}\x01\r\n\r\n".encode(),
    "content length": f"POST /hooks/m3 HTTP/1.1\r\nHost: relay.test\r\nContent-Length: {MARKER}\r\n\r\n".encode(),
    "header too long": f"GET /healthz HTTP/1.1\r\nHost: relay.test\r\nX-Long: {MARKER}{'a' * 9000}\r\n\r\n".encode(),
    "not HTTP": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + MARKER.encode() + b"\r\n\r\n",
    "chunked body": (
        "POST /hooks/m3 HTTP/1.1\r\nHost: relay.test\r\nContent-Type: application/json\r\n"
        f"Transfer-Encoding: chunked\r\n\r\n{MARKER}\r\n"
    ).encode(),
}


@pytest.mark.parametrize("data", MALFORMED.values(), ids=MALFORMED.keys())
async def test_malformed_http_gets_json_400_and_one_log_line(
    start: Start, caplog: pytest.LogCaptureFixture, data: bytes
) -> None:
    """Malformed HTTP gets the contract's JSON 400, echoes nothing of the request, logs one line without a traceback."""
    caplog.set_level(logging.INFO)
    relay = await start(dev=False, run_outbox=True)
    answer = await raw_http.exchange(relay.client.host, relay.client.port, data)
    assert answer.status == 400
    assert answer.headers["content-type"].startswith("application/json")
    assert answer.json()["error"] == "bad_request" and answer.json()["detail"]
    assert MARKER.encode() not in answer.raw
    assert trouble(caplog) == []
    lines = [r for r in caplog.records if "malformed" in r.getMessage().lower()]
    assert len(lines) == 1, [r.getMessage() for r in caplog.records]
    assert MARKER not in lines[0].getMessage()


def test_the_server_thread_serves_through_the_same_server(database_url: str) -> None:
    """ServerThread (tests that run the CLI against a server) listens through the relay's own server."""
    with ServerThread(make_settings(database_url)) as server:
        host, port = server.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=raw_http.PATIENCE_SEC) as sock:
            sock.sendall(MALFORMED["header name"])
            raw = b""
            while chunk := sock.recv(65536):
                raw += chunk
    answer = raw_http.parse(raw)
    assert answer.status == 400 and answer.json()["error"] == "bad_request"
