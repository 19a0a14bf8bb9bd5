"""`POST /hooks/twilio/status`: Twilio's StatusCallback moves an invitation's delivery, never its loop.

Delivered is not an ack. A join code's message that failed after all (63016: WhatsApp outside the
24-hour session) fails its outbox row, named `outside_session` as an invitation's would be. The bookkeeping (the delivery ladder, an opt-out on 21610, the
wait for a sid the send has not committed yet) is `relay.inbound`'s.
"""

from __future__ import annotations

import logging

from aiohttp import web

from relay.channels.twilio.send import OUTSIDE_SESSION, OUTSIDE_SESSION_ERROR, UNSUBSCRIBED
from relay.channels.twilio.webhook import MAX_SID_CHARS, message_sid, twiml, verified_form
from relay.errors import BadRequestError
from relay.keys import INBOUND, METRICS

__all__ = ["DELIVERY_STATUS", "STATUS_PATH", "handle_status"]

log = logging.getLogger("care_relay.twilio")

STATUS_PATH = "/hooks/twilio/status"
#: Twilio MessageStatus -> invitation status; anything else is not about delivery.
DELIVERY_STATUS = {
    "accepted": "sent",
    "scheduled": "sent",
    "queued": "sent",
    "sending": "sent",
    "sent": "sent",
    "delivered": "delivered",
    "read": "read",
    "failed": "failed",
    "undelivered": "failed",
    "canceled": "failed",
}


async def handle_status(request: web.Request) -> web.Response:
    """Twilio's StatusCallback: the invitation's delivery moves; the loop never does (delivered is not an ack)."""
    app = request.app
    form = await verified_form(request)
    sid = message_sid(form)
    if len(sid) > MAX_SID_CHARS:
        raise BadRequestError("This MessageSid is longer than any Twilio sends.")
    status = DELIVERY_STATUS.get((form.get("MessageStatus") or form.get("SmsStatus") or "").strip().lower())
    code = (form.get("ErrorCode") or "").strip()
    opted_out = code == str(UNSUBSCRIBED)
    if not sid or (status is None and not opted_out):
        return twiml()
    error = f"Twilio error {code}" if code else "Twilio reported the message undelivered"
    if code == str(OUTSIDE_SESSION):  # WhatsApp outside the 24-hour session, reported after the send
        error = f"{OUTSIDE_SESSION_ERROR} ({error})"
    outside_session = code == str(OUTSIDE_SESSION)
    found = await app[INBOUND].delivery(sid, status, error, opted_out=opted_out, outside_session=outside_session)
    if found is None:
        app[METRICS].delivery_reports.labels("unknown_sid").inc()
        log.info("delivery status for unknown message %s: ignored", sid)
        return twiml()
    app[METRICS].delivery_reports.labels(status or "opted_out").inc()
    log.info(
        "%s %s %s: %s%s",
        found.channel,
        found.what.replace("_", " "),
        found.id,
        status or "status unchanged",
        ", opted out" if opted_out else "",
    )
    return twiml()
