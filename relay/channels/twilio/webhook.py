"""What both of Twilio's webhooks share: the signature check and the TwiML answer.

Both check X-Twilio-Signature against RELAY_PUBLIC_BASE_URL + the path (and query)
before anything is read further or stored, so they work behind a proxy.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web
from multidict import MultiDict
from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse

from relay.bodies import media_type, read_body
from relay.errors import BadRequestError, ForbiddenError, UnsupportedMediaTypeError
from relay.keys import SETTINGS
from relay.settings import Settings

__all__ = ["MAX_SID_CHARS", "TWILIO", "message_sid", "prepare", "twiml", "verified_form"]

#: Twilio's sids are 34 characters; the column holds 64
MAX_SID_CHARS = 64


@dataclass(frozen=True)
class _Twilio:
    validator: RequestValidator


TWILIO = web.AppKey("twilio", _Twilio)


def prepare(app: web.Application, settings: Settings) -> None:
    """The request validator the inbound routes check X-Twilio-Signature with."""
    if not settings.twilio_auth_token:  # an empty token would check signatures against no secret
        raise ValueError("Twilio's webhooks need TWILIO_AUTH_TOKEN; prepare() is only called when Twilio is configured")
    app[TWILIO] = _Twilio(RequestValidator(settings.twilio_auth_token))


async def verified_form(request: web.Request) -> MultiDict[str]:
    """The POSTed form, once X-Twilio-Signature matches RELAY_PUBLIC_BASE_URL + path (+ query)."""
    if media_type(request) != "application/x-www-form-urlencoded":
        raise UnsupportedMediaTypeError(
            "Twilio posts 'application/x-www-form-urlencoded'; this is not a Twilio webhook."
        )
    await read_body(request, request.app[SETTINGS].relay_max_body_bytes)  # 413 past the limit; post() reads it again
    try:
        posted = await request.post()
    except (ValueError, UnicodeDecodeError, LookupError):  # LookupError: an unknown charset
        raise BadRequestError("The body is not a form Twilio would send.") from None
    form: MultiDict[str] = MultiDict((k, v) for k, v in posted.items() if isinstance(v, str))
    signature = request.headers.get("X-Twilio-Signature", "")
    url = request.app[SETTINGS].public_base_url + request.raw_path
    if not signature or not request.app[TWILIO].validator.validate(url, form, signature):
        raise ForbiddenError(
            "X-Twilio-Signature does not match this request; check TWILIO_AUTH_TOKEN and that "
            "RELAY_PUBLIC_BASE_URL is the URL Twilio calls."
        )
    return form


def message_sid(form: MultiDict[str]) -> str:
    """The form's MessageSid (SmsSid on older callbacks); "" when it has none."""
    return form.get("MessageSid") or form.get("SmsSid") or ""


def twiml(text: str | None = None) -> web.Response:
    """A TwiML answer: one message, or none (`<Response />`)."""
    response = MessagingResponse()
    if text:
        response.message(text)
    return web.Response(text=str(response), content_type="application/xml")
