"""What a page for people reads from its request: a capability token of bounded length and
a short urlencoded form, size-capped (the action link's and the consent page's).
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from aiohttp import web

from relay.bodies import media_type
from relay.errors import BadRequestError, PayloadTooLargeError, UnsupportedMediaTypeError
from relay.labels import N_

__all__ = ["FORM_MAX_BYTES", "FORM_MAX_FIELDS", "TOKEN_MAX_CHARS", "read_form"]

#: An action token for one invitation id is ~60 characters; far longer is not ours.
TOKEN_MAX_CHARS = 512
#: Three short fields; far below RELAY_MAX_BODY_BYTES on purpose.
FORM_MAX_BYTES = 8 * 1024
FORM_MAX_FIELDS = 10


async def read_form(request: web.Request) -> dict[str, str]:
    """The urlencoded form, size-capped; the first value of each field."""
    too_large = PayloadTooLargeError(N_("This form takes a short outcome and a note of up to 1000 characters."))
    if request.content_length is not None and request.content_length > FORM_MAX_BYTES:
        raise too_large
    if media_type(request) != "application/x-www-form-urlencoded":
        raise UnsupportedMediaTypeError(N_("Answer with the buttons on the invitation page."))
    body = await request.read()  # already received, within the body timeout, by the errors middleware
    if len(body) > FORM_MAX_BYTES:
        raise too_large
    try:
        text = body.decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, max_num_fields=FORM_MAX_FIELDS, errors="strict")
    except ValueError:  # not UTF-8 (UnicodeDecodeError is a ValueError), or too many fields
        raise BadRequestError(N_("This answer could not be read; use the buttons on the invitation page.")) from None
    form: dict[str, str] = {}
    for name, value in pairs:
        form.setdefault(name, value)
    return form
