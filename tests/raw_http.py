"""Raw HTTP/1.1 over asyncio sockets: for what a well-behaved client never sends.

Malformed request lines and headers, bodies that stall, connections that stay idle:
`aiohttp`'s client cannot produce them, so these tests speak bytes.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

#: generous: the server's bounds in these tests are a fraction of a second.
PATIENCE_SEC = 10.0


@dataclass(frozen=True)
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes
    raw: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def parse(raw: bytes) -> RawResponse:
    """One response, read to the end of the connection."""
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return RawResponse(status, headers, body, raw)


Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def connect(host: str, port: int) -> Connection:
    return await asyncio.open_connection(host, port)


async def read_to_close(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sends until it closes the connection (fails if it never does)."""
    return await asyncio.wait_for(reader.read(), PATIENCE_SEC)


async def exchange(host: str, port: int, data: bytes) -> RawResponse:
    """Send `data`, then read until the server closes; the request must ask for `Connection: close`
    or be one the server refuses (it closes after answering)."""
    reader, writer = await connect(host, port)
    try:
        writer.write(data)
        await writer.drain()
        return parse(await read_to_close(reader))
    finally:
        writer.close()


def request(method: str, path: str, headers: dict[str, str] | None = None, body: bytes = b"") -> bytes:
    """A well-formed request head (and body) as bytes."""
    lines = [f"{method} {path} HTTP/1.1", "Host: relay.test"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


async def read_response(reader: asyncio.StreamReader) -> RawResponse:
    """One response on a connection that stays open (its body sized by Content-Length)."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), PATIENCE_SEC)
    response = parse(head)
    size = int(response.headers.get("content-length", "0"))
    body = await asyncio.wait_for(reader.readexactly(size), PATIENCE_SEC)
    return RawResponse(response.status, response.headers, body, head + body)
