"""`POST /hooks/twilio/inbound`: an agent's SMS / WhatsApp reply, translated into an answer.

The words (a WhatsApp quick-reply tap's ButtonPayload, else the Body) are read by the reply
grammar (`replies`): an ack or a done becomes a `relay.loop.Ack` / `Done` for
`relay.answers`, whose `Outcome` comes back as TwiML words;
LIST, MENU and a bare code are answered from the agent's open invitations; STOP and
START are kept by `relay.inbound`, which also claims each MessageSid once (a replay is
answered with nothing) and counts numbers the directory does not know.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import assert_never

from aiohttp import web
from multidict import MultiDict

from relay import compose
from relay.addresses import Confirmed
from relay.answers import Ack, Done, Outcome, Pass
from relay.channels.twilio import replies
from relay.channels.twilio.replies import (
    JoinWith,
    ListOpen,
    NotNow,
    OpenInvite,
    Problem,
    Remind,
    SetAway,
    ShowMenu,
    TwilioKeyword,
)
from relay.channels.twilio.webhook import MAX_SID_CHARS, message_sid, twiml, verified_form
from relay.delivery import Invite
from relay.errors import BadRequestError
from relay.inbound import UnknownSender
from relay.invitations import AgentRow, View
from relay.keys import ADDRESSES, ANSWERS, DIRECTORY, INBOUND, INVITATIONS, LEXICON, METRICS
from relay.redact import redact
from relay.words import Words

__all__ = ["INBOUND_PATH", "handle_inbound", "words_of"]

log = logging.getLogger("care_relay.twilio")

INBOUND_PATH = "/hooks/twilio/inbound"
#: which agent field a channel's numbers live in.
ADDRESS_FIELD = {"sms": "phone", "whatsapp": "whatsapp"}


async def handle_inbound(request: web.Request) -> web.Response:
    """An agent's SMS / WhatsApp reply → care.ack, care.done, a pass, LIST, MENU or an opt-out; TwiML back."""
    app = request.app
    form = await verified_form(request)
    sid = message_sid(form)
    if not sid or len(sid) > MAX_SID_CHARS:
        raise BadRequestError("The form carries no MessageSid Twilio would send.")
    sender = form.get("From", "")
    channel = "whatsapp" if sender.startswith("whatsapp:") else "sms"
    number = sender.removeprefix("whatsapp:").strip()
    row = await app[INVITATIONS].claimant(channel, number)
    if row is None or not row.active:
        return await _unknown_sender(app, sid, channel, number)
    confirmed = app[INVITATIONS].confirmed(row, channel)

    shown = redact(number) or ""
    if not await app[INBOUND].claim(sid, channel, number):
        app[METRICS].inbound_messages.labels(channel, "replayed").inc()
        log.info("%s reply %s was already answered: not recorded again", channel, sid)
        return twiml()  # answered before: recorded once, and nothing is said twice
    if channel == "whatsapp":  # any message in opens the agent's 24-hour session
        await app[ADDRESSES].seen_on_whatsapp(row.id)
    try:
        if confirmed:
            outcome, text = await _answer(app, row, channel, words_of(form))
        else:
            outcome, text = await _unconfirmed(app, row, channel, words_of(form))
    except Exception:
        try:  # let Twilio's retry answer it afresh
            await app[INBOUND].release(sid)
        except Exception as exc:
            log.warning("could not release inbound claim: %s", type(exc).__name__)
        raise
    await app[INBOUND].settle(sid, outcome)
    app[METRICS].inbound_messages.labels(channel, "answered").inc()
    log.info("%s reply from %s: %s", channel, shown, outcome)
    return twiml(text)


async def _unknown_sender(app: web.Application, sid: str, channel: str, number: str) -> web.Response:
    """Not in the directory: an empty answer, a verification_attempt row — or, past the hourly limit, a counter."""
    metrics = app[METRICS]
    match await app[INBOUND].unknown_sender(sid, channel, number):
        case UnknownSender.LIMITED:  # a flood from one number: the counters only, not even a log line each
            metrics.inbound_messages.labels(channel, "unknown_limited").inc()
            metrics.unknown_senders.labels(channel).inc()
            log.debug("%s message from an unknown number past the hourly limit", channel)
        case UnknownSender.RECORDED:
            metrics.inbound_messages.labels(channel, "unknown").inc()
            metrics.unknown_senders.labels(channel).inc()
        case UnknownSender.REPLAY:
            metrics.inbound_messages.labels(channel, "replayed").inc()
            log.info("%s message %s from an unknown number was already recorded", channel, sid)
    return twiml()


def words_of(form: MultiDict[str]) -> str:
    """What the agent said: a WhatsApp quick-reply tap's ButtonPayload (`K7QX 1`, `DONE K7QX`,
    `PASS K7QX`), else the Body."""
    return (form.get("ButtonPayload") or "").strip() or form.get("Body", "")


def _who(invite: Invite) -> str:
    return compose.sender_name(invite)


@dataclass(frozen=True)
class _Open:
    """An agent's open invitations by code: the rows, their words, and what the grammar needs."""

    views: dict[str, View]
    invites: dict[str, Invite]

    @property
    def opens(self) -> list[OpenInvite]:
        return [
            OpenInvite(code, invite.responses, tuple(compose.label(invite, r) for r in invite.responses))
            for code, invite in self.invites.items()
        ]


async def _unconfirmed(app: web.Application, row: AgentRow, channel: str, body: str) -> tuple[str, str | None]:
    """A number its owner has not confirmed names nobody yet: it may JOIN, or STOP (and START,
    HELP); anything else is answered with how to join, and no loop is read or answered."""
    command = replies.parse(body)
    if isinstance(command, TwilioKeyword):
        return await _keyword(app, row, channel, command)
    if isinstance(command, JoinWith):
        return await _join(app, row, channel, command.code)
    join = await app[ADDRESSES].to_ask(row.id, channel)
    if join is not None:
        return "join_asked", compose.join_message(join)
    return "unconfirmed", replies.not_joined("unconfirmed", app[LEXICON].words(row.locale))


async def _keyword(app: web.Application, row: AgentRow, channel: str, command: TwilioKeyword) -> tuple[str, None]:
    """STOP / START are kept (confirmed or not: a person may always refuse); Twilio answers its own keywords."""
    if command.kind != "help":
        await app[INBOUND].opt(row.id, channel, opted_out=command.kind == "opt_out")
    return command.kind, None


async def _answer(app: web.Application, row: AgentRow, channel: str, body: str) -> tuple[str, str | None]:
    """(outcome kept on the inbound_message row, TwiML text) for a known agent's reply."""
    command = replies.parse(body)
    if isinstance(command, TwilioKeyword):
        return await _keyword(app, row, channel, command)
    if isinstance(command, JoinWith):
        return await _join(app, row, channel, command.code)
    if isinstance(command, SetAway):
        return await _away(app, row, channel, away=command.away)
    mine = _Open({}, {})
    for view, invite in await app[INVITATIONS].open_for(row):
        if view.code:
            mine.views[view.code], mine.invites[view.code] = view, invite
    return await _read(app, row, channel, replies.resolve(command, mine.opens), mine)


async def _read(  # noqa: PLR0911 - one return per reading, checked complete by assert_never
    app: web.Application, row: AgentRow, channel: str, reading: replies.Reading, mine: _Open
) -> tuple[str, str | None]:
    agent_id, display = row.id, row.display
    words = app[LEXICON].words(row.locale)
    match reading:
        case ListOpen():
            return "list", replies.listing_text([(o, _who(mine.invites[o.code])) for o in mine.opens], words=words)
        case ShowMenu():
            return "menu", replies.menu_text(next(iter(mine.invites), None), words)
        case Remind():
            return "remind", compose.reply_line(mine.invites[reading.code])
        case replies.Ack():
            view = mine.views[reading.code]
            ack = Ack(view.signal_id, agent_id, reading.response, channel, invitation_id=view.id)
            outcome = (await app[ANSWERS].record(ack)).outcome
            said = words._("recorded: {label}", label=words.label(reading.response))
            return f"ack:{outcome}", _reply_words(outcome, display, reading.code, said, words)
        case replies.Done():
            view = mine.views[reading.code]
            done = Done(view.signal_id, agent_id, reading.outcome, reading.note, channel, invitation_id=view.id)
            outcome = (await app[ANSWERS].record(done)).outcome
            said = words._("closed: {label}", label=words.label(reading.outcome))
            return f"done:{outcome}", _reply_words(outcome, display, reading.code, said, words)
        case NotNow():
            view = mine.views[reading.code]
            outcome = (
                await app[ANSWERS].record(Pass(view.signal_id, agent_id, channel, invitation_id=view.id))
            ).outcome
            return f"pass:{outcome}", _pass_words(outcome, display, reading.code, words)
        case Problem():
            await _refuse(app, reading, mine.views, agent_id, channel)
            return f"refused:{reading.reason}", replies.problem_text(reading, mine.opens, words)
        case TwilioKeyword():  # answered before the grammar was asked; resolve passes it through
            return reading.kind, None
        case JoinWith():  # likewise
            return await _join(app, row, channel, reading.code)
        case SetAway():  # likewise
            return await _away(app, row, channel, away=reading.away)
        case _:
            assert_never(reading)


async def _join(app: web.Application, row: AgentRow, channel: str, code: str) -> tuple[str, str]:
    """`JOIN <code>` from the agent's own number: confirmed when it is the code this number was sent."""
    result = await app[ADDRESSES].confirm(row.id, channel, code)
    words = app[LEXICON].words(row.locale)
    if result is Confirmed.CONFIRMED:
        return "join:confirmed", compose.joined_text(row.display, words)
    return f"join:{result}", replies.not_joined(str(result), words)


async def _away(app: web.Application, row: AgentRow, channel: str, *, away: bool) -> tuple[str, str]:
    """`AWAY` / `BACK` from the agent's own number: their instruction, audited (CONTRACT section 10)."""
    word = "AWAY" if away else "BACK"
    await app[DIRECTORY].set_away(row.id, away, instruction=f"{row.id} said {word} by {channel}", via=channel)
    return word.lower(), replies.away_text(row.display, away, app[LEXICON].words(row.locale))


def _reply_words(outcome: Outcome, display: str, code: str, recorded: str, words: Words) -> str:
    _ = words._
    match outcome:
        case Outcome.RECORDED:
            return replies.thanks(display, recorded, words)
        case Outcome.ALREADY:
            return replies.thanks(display, _("your answer to {code} was already recorded", code=code), words)
        case Outcome.ALREADY_DONE:
            return replies.thanks(display, _("{code} was already closed", code=code), words)
        case Outcome.ALREADY_ANSWERED:
            return _(
                "You already said you're here for {code}; when you have been present, reply DONE {code}.", code=code
            )
        case (
            Outcome.NOT_INVITED
            | Outcome.NO_SUCH_LOOP
            | Outcome.GONE
            | Outcome.NOT_OFFERED
            | Outcome.BAD_OUTCOME
            | Outcome.NOTE_TOO_LONG
        ):
            return _("That invitation is no longer open for you. Send LIST to see the open ones.")
        case _:
            assert_never(outcome)


def _pass_words(outcome: Outcome, display: str, code: str, words: Words) -> str:
    """The answer to PASS: thanks, and nothing else is sent to anyone."""
    if outcome in (Outcome.RECORDED, Outcome.ALREADY):
        return words._(
            "Thank you, {display} — not now is fine; nothing more is needed from you for {code}.",
            display=display,
            code=code,
        )
    return _reply_words(outcome, display, code, "", words)


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
        app[ANSWERS].note_refusal(agent_id=agent_id, via=channel, reason=reason)
