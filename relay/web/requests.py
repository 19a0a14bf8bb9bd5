"""Small, total readers of request metadata (they never raise on garbled input)."""

from __future__ import annotations

from aiohttp import web


def media_type(request: web.Request) -> str:
    """The Content-Type's media type, lower case; a garbled header is simply not that type.

    (aiohttp's `request.content_type` raises on some malformed headers.)
    """
    return request.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
