"""`POST /slack/events`: Slack's signature checked over the raw bytes, then Bolt dispatches.

Mounted by the channel registry; Bolt (kept under `BOLT`) dispatches to the listeners
(`listeners`) through slack_bolt's aiohttp adapter.
"""

from __future__ import annotations

import logging
import re

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncApp
from slack_sdk.signature import SignatureVerifier

from relay.bodies import read_body
from relay.errors import (
    BadRequestError,
    InvalidSignatureError,
    MalformedSignatureHeaderError,
    MissingSignatureError,
    NotFoundError,
    TimestampOutOfWindowError,
)
from relay.keys import CLOCK, SETTINGS

__all__ = ["BOLT", "SLACK_WINDOW_SEC", "handle_slack_events"]

log = logging.getLogger("care_relay.slack")

BOLT = web.AppKey("slack_bolt", AsyncApp)


#: how far X-Slack-Request-Timestamp may be from now, as Slack's own verifier allows
SLACK_WINDOW_SEC = 300
_SLACK_TS = re.compile(r"[0-9]{1,10}", re.ASCII)
_SLACK_SIG = re.compile(r"v0=[0-9a-fA-F]{64}", re.ASCII)


async def handle_slack_events(request: web.Request) -> web.Response:
    """`POST /slack/events`: Slack's signature checked over the raw bytes, then Bolt dispatches.

    The check runs here first (slack_sdk's verifier; Bolt checks again) so that nothing
    unsigned is parsed: garbled headers, bodies and charsets get the contract's 4xx, not
    Bolt's 500 or its own error shapes.
    """
    settings = request.app[SETTINGS]
    body = await read_body(request, settings.relay_max_body_bytes)
    timestamp = request.headers.get("X-Slack-Request-Timestamp", "")
    signature = request.headers.get("X-Slack-Signature", "")
    if not timestamp or not signature:
        raise MissingSignatureError("Slack requests carry X-Slack-Request-Timestamp and X-Slack-Signature.")
    if not _SLACK_TS.fullmatch(timestamp) or not _SLACK_SIG.fullmatch(signature):
        raise MalformedSignatureHeaderError("X-Slack-Request-Timestamp or X-Slack-Signature is not in Slack's form.")
    skew = abs(request.app[CLOCK]() - int(timestamp))
    if skew > SLACK_WINDOW_SEC:
        raise TimestampOutOfWindowError(
            f"X-Slack-Request-Timestamp is {int(skew)} s off the relay's clock (Slack allows 300 s)."
        )
    secret = settings.slack_signing_secret
    if not secret:  # never reached (the route is mounted with a secret); an empty one must not verify
        raise InvalidSignatureError("This relay has no Slack signing secret.")
    try:
        valid = SignatureVerifier(secret).is_valid(body, timestamp, signature)
    except UnicodeDecodeError:  # the verifier reads the body as UTF-8, as Slack sends it
        raise BadRequestError("The body is not UTF-8 text; this is not a request Slack sends.") from None
    if not valid:
        raise InvalidSignatureError("X-Slack-Signature does not match this app's signing secret.")
    unreadable = BadRequestError("This is not a request Slack sends: the body or its charset cannot be read.")
    try:
        # the body read above, decoded by its charset and parsed (form, `payload` JSON) by Bolt
        bolt_request = await to_bolt_request(request)
        answer = await request.app[BOLT].async_dispatch(bolt_request)
    except (ValueError, TypeError, AttributeError, LookupError) as exc:  # UnicodeDecodeError is a ValueError
        log.warning("slack request not readable: %s", type(exc).__name__)
        raise unreadable from None
    if answer.status == 404:
        raise NotFoundError("This relay does not handle that kind of Slack request.")
    if answer.status >= 500:
        log.warning("slack request answered %d by the dispatcher", answer.status)
        raise unreadable
    return await to_aiohttp_response(answer)
