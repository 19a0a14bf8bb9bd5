"""Reading a request as its sender sent it: shared by every HTTP edge (hooks and channels).

Total readers: a garbled header is simply not that type; a body is refused with the
contract's error, never half-read into a handler.
"""

from __future__ import annotations

from aiohttp import web

from relay import headers
from relay.errors import PayloadTooLargeError, UnsupportedMediaTypeError


def media_type(request: web.Request) -> str:
    """The Content-Type's media type, lower case (aiohttp's `request.content_type` raises on some malformed headers)."""
    return headers.media_type(request.headers.get("Content-Type", ""))


async def read_body(request: web.Request, limit: int) -> bytes:
    """The raw body, refusing (413) as soon as it grows past `limit`, and (415) one with a
    Content-Encoding: signatures cover the bytes as sent, so a decoded body is not what was signed."""
    too_large = PayloadTooLargeError.over(limit)
    if request.content_length is not None and request.content_length > limit:
        raise too_large
    if request.headers.get("Content-Encoding", "identity").strip().lower() not in ("", "identity"):
        raise UnsupportedMediaTypeError(
            "Send the body without Content-Encoding (no gzip or other compression): "
            "the signature covers the bytes as sent."
        )
    try:
        # aiohttp stops reading at client_max_size (set just above `limit` by create_app)
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise too_large from None
    if len(body) > limit:
        raise too_large
    return body
