"""SMS and WhatsApp through Twilio: both directions of Twilio's wire format.

Out: :class:`TwilioChannel` sends an invitation with the twilio SDK's REST client
(``twilio_http.make_client``, so TWILIO_API_BASE_URL can point it at a fake) and asks
for status callbacks at ``RELAY_PUBLIC_BASE_URL/hooks/twilio/status``. There is
nothing to edit in a sent SMS, so ``update`` sends nothing (and never texts the other
agents: no nudges).

In: ``POST /hooks/twilio/inbound`` takes an agent's reply (grammar in
:mod:`relay.channels.sms_replies`) and answers in TwiML; ``POST /hooks/twilio/status``
follows delivery. Both check ``X-Twilio-Signature`` against RELAY_PUBLIC_BASE_URL + the
path (and query) before anything is stored, so they work behind a proxy.
Replies are kept once per MessageSid; numbers not in the directory are counted, per
number and hour, by a keyed hash, never stored in full. No full phone number reaches a
log line, an audit row or an error text.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
from dataclasses import dataclass
from typing import assert_never

import aiohttp
from aiohttp import web
from multidict import MultiDict
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.request_validator import RequestValidator
from twilio.rest import Client
from twilio.twiml.messaging_response import MessagingResponse

from inbox import inbound
from inbox.writer import now_ms
from relay import audit, compose
from relay.answers import Ack, Done, Outcome
from relay.channels import sms_replies, twilio_http
from relay.channels.sms_replies import ListOpen, OpenInvite, Problem, Remind, ShowMenu, TwilioKeyword
from relay.delivery import Channel, Delivery, Invite, LoopSnapshot, permanent, retry, sent
from relay.errors import BadRequestError, ForbiddenError, UnsupportedMediaTypeError
from relay.invitations import AgentRow, View
from relay.redact import redact
from relay.settings import Settings
from relay.bodies import media_type, read_body
from relay.state import ANSWERS, INVITATIONS, METRICS, SETTINGS, WRITER

__all__ = [
    "INBOUND_PATH",
    "ROUTES",
    "STATUS_PATH",
    "TwilioChannel",
    "handle_inbound",
    "handle_status",
    "number_hash",
    "open_channels",
    "prepare",
]

log = logging.getLogger("care_relay.twilio")

INBOUND_PATH = "/hooks/twilio/inbound"
STATUS_PATH = "/hooks/twilio/status"
#: which agent field a channel's numbers live in.
ADDRESS_FIELD = {"sms": "phone", "whatsapp": "whatsapp"}
UNSUBSCRIBED = 21610
#: Twilio's sids are 34 characters; the column holds 64
MAX_SID_CHARS = 64
#: seconds between looks for a status callback's sid that the send has not committed yet
UNKNOWN_SID_WAITS = (0.1, 0.3, 0.6)
#: a claim on a MessageSid still "received" after this long was abandoned (a crash): a replay takes it over.

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
#: callbacks arrive out of order: an invitation only moves up this ladder.

_AISHA_WHO = {"lead": "a lead", "contact": "a contact", "account": "an account", "opportunity": "a deal"}


# Out ----------------------------------------------------------------------------------


def whatsapp_address(number: str) -> str:
    return number if number.startswith("whatsapp:") else f"whatsapp:{number}"


class TwilioChannel:
    """One Twilio sender: `sms` (agent.phone) or `whatsapp` (agent.whatsapp, `whatsapp:` prefixes)."""

    def __init__(
        self, name: str, client: Client, *, sender: str, status_callback: str, owns_client: bool = False
    ) -> None:
        self.name = name
        self._client = client
        self._owns_client = owns_client
        self._from = whatsapp_address(sender) if name == "whatsapp" else sender
        self._status_callback = status_callback

    async def send(self, invite: Invite) -> Delivery:
        number = invite.agent.phone if self.name == "sms" else invite.agent.whatsapp
        if not number:
            return permanent(f"agent has no {self.name} number in the directory")
        to = whatsapp_address(number) if self.name == "whatsapp" else number
        try:
            # Awaited in this task (never wait_for / create_task): Retry-After is read from a ContextVar.
            message = await self._client.messages.create_async(
                to=to, from_=self._from, body=compose.text_message(invite), status_callback=self._status_callback
            )
        except TwilioRestException as exc:
            return self._refused(exc)
        except TimeoutError:
            return retry("Twilio did not answer in time")
        except (aiohttp.ClientError, OSError) as exc:
            return retry(f"connection error ({type(exc).__name__})")
        except TwilioException as exc:  # e.g. an unreadable answer: Twilio may not have taken it
            return retry(f"Twilio client error ({type(exc).__name__})")
        log.info("%s invitation %s accepted by Twilio as %s", self.name, invite.invitation_id, message.sid)
        return sent(message.sid)

    def _refused(self, exc: TwilioRestException) -> Delivery:
        # Only status and code: Twilio's message text can quote the number (e.g. 21211).
        error = f"Twilio {exc.status} (error {exc.code})"
        log.warning("%s send refused: %s", self.name, error)
        if exc.status == 429 or exc.status >= 500:
            return retry(error, twilio_http.retry_after_seconds())
        if exc.code == UNSUBSCRIBED:
            return permanent(
                f"Twilio {UNSUBSCRIBED}: the agent unsubscribed from this {self.name} number", opted_out=True
            )
        return permanent(error)

    async def update(self, invite: Invite, provider_id: str, loop: LoopSnapshot) -> Delivery:
        """A sent SMS cannot be edited; nothing is sent (and the other agents are never texted)."""
        return sent(provider_id)

    async def close(self) -> None:
        """The SMS and WhatsApp channels share one client; the one that owns it closes it."""
        if self._owns_client:
            await twilio_http.close_client(self._client)


# Wiring -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Twilio:
    validator: RequestValidator


TWILIO = web.AppKey("twilio", _Twilio)


def prepare(app: web.Application, settings: Settings) -> None:
    """The request validator the inbound routes check X-Twilio-Signature with."""
    assert settings.twilio_auth_token, "prepare() is only called when Twilio is configured"
    app[TWILIO] = _Twilio(RequestValidator(settings.twilio_auth_token))


def open_channels(settings: Settings) -> list[Channel]:
    """One REST client, shared by the SMS and WhatsApp channels that have a sender number."""
    senders = [
        (name, sender)
        for name, sender in (("sms", settings.twilio_sms_from), ("whatsapp", settings.twilio_whatsapp_from))
        if sender
    ]
    if not senders:
        return []
    client = twilio_http.make_client(
        settings.twilio_account_sid or "", settings.twilio_auth_token or "", settings.twilio_api_base_url
    )
    callback = settings.public_base_url + STATUS_PATH
    return [
        TwilioChannel(name, client, sender=sender, status_callback=callback, owns_client=i == 0)
        for i, (name, sender) in enumerate(senders)
    ]


# In: shared -----------------------------------------------------------------------------


async def _verified_form(request: web.Request) -> MultiDict[str]:
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


def twiml(text: str | None = None) -> web.Response:
    """A TwiML answer: one message, or none (`<Response />`)."""
    response = MessagingResponse()
    if text:
        response.message(text)
    return web.Response(text=str(response), content_type="application/xml")


def number_hash(settings: Settings, number: str) -> str:
    """A keyed hash of a full number (the first link secret, else the auth token): counts without keeping it."""
    key = (settings.relay_link_secrets[0] if settings.relay_link_secrets else settings.twilio_auth_token) or ""
    return hmac.new(key.encode(), b"care-relay.unknown-sender.v1:" + number.encode(), hashlib.sha256).hexdigest()


# In: replies ------------------------------------------------------------------------------


async def handle_inbound(request: web.Request) -> web.Response:
    """An agent's SMS / WhatsApp reply → care.ack, care.done, LIST, MENU or an opt-out; TwiML back."""
    app = request.app
    form = await _verified_form(request)
    sid = form.get("MessageSid") or form.get("SmsSid") or ""
    if not sid or len(sid) > MAX_SID_CHARS:
        raise BadRequestError("The form carries no MessageSid Twilio would send.")
    sender = form.get("From", "")
    channel = "whatsapp" if sender.startswith("whatsapp:") else "sms"
    number = sender.removeprefix("whatsapp:").strip()
    row = await app[INVITATIONS].agent_by(**{ADDRESS_FIELD[channel]: number}) if number else None
    if row is None or not row["active"]:
        return await _unknown_sender(app, sid, channel, number)

    app[METRICS]["twilio.inbound"] += 1
    shown = redact(number) or ""
    if not await app[WRITER].run(lambda tx: inbound.claim_message(tx, sid, channel, shown, now_ms())):
        app[METRICS]["twilio.inbound_replayed"] += 1
        log.info("%s reply %s was already answered: not recorded again", channel, sid)
        return twiml()  # answered before: recorded once, and nothing is said twice
    try:
        outcome, text = await _answer(app, row, channel, form.get("Body", ""))
    except Exception:
        try:  # let Twilio's retry answer it afresh
            await app[WRITER].run(lambda tx: inbound.release_message(tx, sid))
        except Exception as exc:
            log.warning("could not release inbound claim: %s", type(exc).__name__)
        raise
    await app[WRITER].run(lambda tx: inbound.settle_message(tx, sid, outcome))
    log.info("%s reply from %s: %s", channel, shown, outcome)
    return twiml(text)


async def _unknown_sender(app: web.Application, sid: str, channel: str, number: str) -> web.Response:
    """Not in the directory: an empty answer, a verification_attempt row — or, past the hourly limit, a counter."""
    settings = app[SETTINGS]
    shown = redact(number) or ""
    digest = number_hash(settings, number)
    limit = settings.relay_unknown_sender_max_per_hour
    at = now_ms()
    result = await app[WRITER].run(
        lambda tx: inbound.record_unknown(tx, sid=sid, channel=channel, sender=shown, digest=digest, limit=limit, at=at)
    )
    if result == "limited":  # a flood from one number: the counter only, not even a log line each
        app[METRICS]["twilio.unknown_sender_limited"] += 1
        log.debug("%s message from an unknown number past the hourly limit", channel)
    elif result == "recorded":
        app[METRICS]["twilio.unknown_sender"] += 1
        audit.emit({"kind": "unknown_sender", "via": channel, "from": shown})
    else:
        log.info("%s message %s from an unknown number was already recorded", channel, sid)
    return twiml()


def _who(invite: Invite) -> str:
    signal = invite.signal
    if signal.source == "aisha":
        return _AISHA_WHO.get(signal.entity_type or "", "AiSHA")
    return signal.actor_display or signal.subject.removeprefix("actor:")


async def _answer(app: web.Application, row: AgentRow, channel: str, body: str) -> tuple[str, str | None]:
    """(outcome kept on the inbound_message row, TwiML text) for a known agent's reply."""
    agent_id, display = str(row["id"]), str(row["display"])
    command = sms_replies.parse(body)
    if isinstance(command, TwilioKeyword):
        if command.kind != "help":
            opted_out = command.kind == "opt_out"
            await app[WRITER].run(lambda tx: inbound.record_opt(tx, agent_id, channel, opted_out, now_ms()))
            audit.emit({"kind": command.kind, "agent": agent_id, "via": channel, "action_origin": "user_directed"})
        return command.kind, None  # Twilio answers its own keywords

    views: dict[str, View] = {}
    invites: dict[str, Invite] = {}
    for view, invite in await app[INVITATIONS].open_for(row):
        if view.code:
            views[view.code], invites[view.code] = view, invite
    opens = [OpenInvite(code, invite.responses) for code, invite in invites.items()]
    reading = sms_replies.resolve(command, opens)

    if isinstance(reading, ListOpen):
        return "list", sms_replies.listing_text([(o, _who(invites[o.code])) for o in opens])
    if isinstance(reading, ShowMenu):
        return "menu", sms_replies.menu_text(opens[0].code if opens else None)
    if isinstance(reading, Remind):
        return "remind", compose.reply_line(invites[reading.code])
    if isinstance(reading, sms_replies.Ack):
        view = views[reading.code]
        ack = Ack(view.signal_id, agent_id, reading.response, channel, invitation_id=view.id)
        outcome = (await app[ANSWERS].record(ack)).outcome
        return f"ack:{outcome}", _reply_words(outcome, display, reading.code, f"recorded: {reading.response}")
    if isinstance(reading, sms_replies.Done):
        view = views[reading.code]
        done = Done(view.signal_id, agent_id, reading.outcome, reading.note, channel, invitation_id=view.id)
        outcome = (await app[ANSWERS].record(done)).outcome
        return f"done:{outcome}", _reply_words(outcome, display, reading.code, f"closed: {reading.outcome}")
    assert isinstance(reading, Problem)  # every other reading was answered above
    await _refuse(app, reading, views, agent_id, channel)
    return f"refused:{reading.reason}", sms_replies.problem_text(reading, opens)


def _reply_words(outcome: Outcome, display: str, code: str, recorded: str) -> str:
    match outcome:
        case Outcome.RECORDED:
            return sms_replies.thanks(display, recorded)
        case Outcome.ALREADY:
            return sms_replies.thanks(display, f"your answer to {code} was already recorded")
        case Outcome.ALREADY_DONE:
            return sms_replies.thanks(display, f"{code} was already closed")
        case (
            Outcome.NOT_INVITED
            | Outcome.NO_SUCH_LOOP
            | Outcome.GONE
            | Outcome.NOT_OFFERED
            | Outcome.BAD_OUTCOME
            | Outcome.NOTE_TOO_LONG
        ):
            return "That invitation is no longer open for you. Send LIST to see the open ones."
        case _:
            assert_never(outcome)


_REFUSAL_REASONS = {
    "no_open": "an SMS answer with no open invitation",
    "need_code": "an SMS answer without a code while several invitations are open",
    "unknown_code": "an SMS answer naming a code that is not one of the agent's open invitations",
    "bad_choice": "an SMS answer naming none of the suggested responses",
    "not_understood": "an SMS answer that could not be read",
}


async def _refuse(app: web.Application, problem: Problem, views: dict[str, View], agent_id: str, channel: str) -> None:
    """An audit row where the answer concerned one loop; otherwise only the audit line."""
    reason = _REFUSAL_REASONS[problem.reason]
    view = views.get(problem.code) if problem.code else None
    if view is not None:
        await app[ANSWERS].refuse(signal_id=view.signal_id, agent_id=agent_id, via=channel, reason=reason)
    else:
        audit.emit(
            {"kind": "refusal", "agent": agent_id, "via": channel, "reason": reason, "action_origin": "user_directed"}
        )


# In: delivery status ------------------------------------------------------------------------


async def handle_status(request: web.Request) -> web.Response:
    """Twilio's StatusCallback: the invitation's delivery moves; the loop never does (delivered is not an ack)."""
    app = request.app
    form = await _verified_form(request)
    sid = form.get("MessageSid") or form.get("SmsSid") or ""
    if len(sid) > MAX_SID_CHARS:
        raise BadRequestError("This MessageSid is longer than any Twilio sends.")
    status = DELIVERY_STATUS.get((form.get("MessageStatus") or form.get("SmsStatus") or "").strip().lower())
    code = (form.get("ErrorCode") or "").strip()
    opted_out = code == str(UNSUBSCRIBED)
    if not sid or (status is None and not opted_out):
        return twiml()
    error = f"Twilio error {code}" if code else "Twilio reported the message undelivered"
    found = None
    # Twilio may call back before the send's own commit has stored the message's sid: look
    # again for a moment rather than lose a "delivered" that raced the commit.
    for wait in (0.0, *UNKNOWN_SID_WAITS):
        await asyncio.sleep(wait)
        found = await app[WRITER].run(lambda tx: inbound.record_status(tx, sid, status, error, opted_out, now_ms()))
        if found is not None:
            break
    if found is None:
        app[METRICS]["twilio.status_unknown_sid"] += 1
        log.info("delivery status for unknown message %s: ignored", sid)
        return twiml()
    invitation_id, channel, moved = found
    app[METRICS][f"twilio.status.{status or 'opted_out'}"] += 1
    log.info(
        "%s invitation %s: %s%s",
        channel,
        invitation_id,
        status or "status unchanged",
        ", opted out" if opted_out else "",
    )
    if status == "failed" and moved:  # a late "failed" after "delivered" moves nothing and says nothing
        audit.emit(
            {
                "kind": "delivery_failed",
                "invitation": invitation_id,
                "via": channel,
                "error": error,
                "action_origin": "care_autonomous",
                "policy_gate_result": "allowed",
                "reason": "Twilio reported the message was not delivered",
            }
        )
    return twiml()


#: Twilio's webhooks, mounted by the channel registry.
ROUTES = (("POST", INBOUND_PATH, handle_inbound), ("POST", STATUS_PATH, handle_status))
