"""Action links: `GET /a/{token}` shows one invitation, `POST /a/{token}` records the answer
(an ack, a done, a "not now", or the agent's "ask someone else").

The token (relay.tokens) names one invitation; whoever holds it answers as that
invitation's agent, so the link is a capability: kept out of caches, referrers and
search indexes. A GET never writes, not even an audit row: link previews and mail
scanners open links on their own. The agent must still be active in the directory:
once an admin removes or deactivates them, their links answer 403 `forbidden` ("link
not yours") and show no care content, and a POST leaves only a refusal audit line.

These pages are for people, so answers here are HTML, errors included, with the
contract's status and code kept visible (`data-status` / `data-code` on `<main>` and a
small line at the foot). A client that asks for JSON only (`Accept: application/json`,
no `text/html`) gets errors as the contract's JSON, as everywhere else.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, assert_never
from urllib.parse import parse_qsl, urlsplit

from aiohttp import web

from relay import compose
from relay.answers import Ack, Done, Outcome, Pass
from relay.bodies import media_type
from relay.delivery import Invite, care_window
from relay.errors import (
    AlreadyAnsweredError,
    AlreadyDoneError,
    BadRequestError,
    ForbiddenError,
    LinkExpiredError,
    NotFoundError,
    PayloadTooLargeError,
    UnsupportedMediaTypeError,
)
from relay.invitations import AckLine, DoneLine, Joined
from relay.keys import ANSWERS, CLOCK, INSTRUCTIONS, INVITATIONS, METRICS, TOKENS
from relay.labels import N_
from relay.loop import NOTE_MAX, OUTCOME_MAX
from relay.model import from_ms
from relay.web import pages
from relay.web.pages import page
from relay.words import Words

log = logging.getLogger("care_relay.links")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

ROUTE = "/a/{token}"
VIA = "link"
#: An action token for one invitation id is ~60 characters; far longer is not ours.
TOKEN_MAX_CHARS = 512
#: Three short fields; far below RELAY_MAX_BODY_BYTES on purpose.
FORM_MAX_BYTES = 8 * 1024
FORM_MAX_FIELDS = 10

# msgids: an error's detail is translated on its page (relay.web.pages), a notice here
NOT_VALID = N_("This link is not valid; open the link from your invitation as it was sent.")
NOT_YOURS = N_("This link belongs to someone who no longer answers for this care circle; nothing was recorded.")
CHOOSE = N_("Please choose one of the answers below.")
PURGED = N_("This invitation is older than the relay keeps messages; nothing more can be answered here.")


@dataclass(frozen=True)
class Loop:
    """One invitation and its loop as they stand: who answered so far, and whether it is closed."""

    signal_id: int
    agent_id: str
    status: str
    invite: Invite
    acks: tuple[AckLine, ...]
    done: DoneLine | None
    #: the agents who said "not now"
    passed: tuple[str, ...] = ()
    #: later signals about the same subject that joined this loop (CONTRACT section 10), oldest first
    joined: tuple[Joined, ...] = ()

    @property
    def closed(self) -> bool:
        return self.done is not None or self.status == "done"

    @property
    def own_ack(self) -> AckLine | None:
        return next((a for a in self.acks if a.agent == self.agent_id), None)

    @property
    def words(self) -> Words:
        """The agent's language."""
        return self.invite.words


@dataclass(frozen=True)
class Page:
    """What `link.html` shows; handlers decide, the template only words it."""

    loop: Loop
    title: str
    status: int = 200
    code: str | None = None
    #: the line under the title: a result ("When you have been present…") or what to fix.
    notice: str | None = None
    notice_kind: str = "ok"  # ok | info | problem
    offer_ack: bool = True
    offer_done: bool = True
    #: what the person typed, kept when a close is sent back to fix.
    outcome: str = ""
    note: str = ""
    state_lines: list[str] = field(default_factory=list)
    #: the close form is open (the agent answered, or is fixing what they typed in it);
    #: otherwise it waits behind "I was there — close the loop"
    close_open: bool = False
    #: "Not now" is offered (not answered, not passed, loop open)
    offer_pass: bool = False
    #: the agents this agent may ask (id, display); the "Ask someone else" form shows when any
    ask_names: tuple[tuple[str, str], ...] = ()
    #: the signals that joined this loop: (what it says, when it came in the agent's zone)
    joined_lines: list[tuple[str, str]] = field(default_factory=list)


# The two handlers ------------------------------------------------------------------------


@page
async def handle_link_page(request: web.Request) -> web.Response:
    """Show the invitation and how to answer it; changes nothing (link previews must not ack)."""
    loop = await _load(request, _invitation_id(request))
    if not loop.invite.agent.active:
        raise ForbiddenError(NOT_YOURS)
    return _page(request, await _with_askable(request, standing(loop)))


@page
async def handle_link_answer(request: web.Request) -> web.Response:
    """Record the agent's ack or done (`user_directed`) and say what was recorded."""
    invitation_id = _invitation_id(request)
    form = await read_form(request)
    loop = await _load(request, invitation_id)
    agent_id, action = loop.agent_id, form.get("action", "")
    answers = request.app[ANSWERS]
    if action == "pass":
        passed = Pass(loop.signal_id, agent_id, VIA, invitation_id=invitation_id)
        return _page(request, await _passed(request, loop, (await answers.record(passed)).outcome))
    if action == "ask":
        return _page(request, await _asked(request, loop, form.get("agent", "")))
    if action == "ack":
        response = form.get("response", "")
        ack = Ack(loop.signal_id, agent_id, response, VIA, invitation_id=invitation_id)
        return _page(request, await _answered(request, loop, (await answers.record(ack)).outcome, response))
    if action == "done":
        outcome = " ".join(form.get("outcome", "").split())
        note_field = form.get("note", "")
        note = "".join(c for c in note_field.replace("\r\n", "\n") if c in "\n\t" or c.isprintable()).strip()
        done = Done(loop.signal_id, agent_id, outcome, note, VIA, invitation_id=invitation_id)
        result = await answers.record(done)
        return _page(request, await _answered(request, loop, result.outcome, outcome, note=note, closing=True))
    admitted = await answers.admit(
        signal_id=loop.signal_id, agent_id=agent_id, invitation_id=invitation_id, via=VIA, what="action link answer"
    )
    return _page(request, await _answered(request, loop, admitted, "", unread=True))


async def _passed(request: web.Request, loop: Loop, outcome: Outcome) -> Page:
    """A "not now": thanks (nothing else moves), or 409 `already_answered` once the agent acked."""
    words = loop.words
    if outcome in (Outcome.RECORDED, Outcome.ALREADY):
        title = words._("Thank you, {display} — not now is fine", display=loop.invite.agent.display)
        notice = words._("Nothing more is needed from you for this one. Nobody else is told.")
        return await _with_askable(request, standing(await _reload(request, loop), title=title, notice=notice))
    if outcome is Outcome.ALREADY_ANSWERED:
        return standing(
            loop,
            status=AlreadyAnsweredError.status,
            code=AlreadyAnsweredError.code,
            title=words._("You already said you're here"),
            notice=words._("When you have been present, close the loop below; this answer was not recorded."),
            notice_kind="info",
        )
    return await _answered(request, loop, outcome, "")


async def _asked(request: web.Request, loop: Loop, target: str) -> Page:
    """The agent's "ask someone else": the named agent invited (their instruction), or why not."""
    words = loop.words
    asked = await request.app[INSTRUCTIONS].ask(
        signal_id=loop.signal_id,
        agent_id=loop.agent_id,
        invitation_id=loop.invite.invitation_id,
        target=target[:100],
        via=VIA,
    )
    after = await _reload(request, loop)
    match asked.outcome:
        case Outcome.RECORDED:
            title = words._("{display} is invited — thank you for thinking of them.", display=asked.display)
            return await _with_askable(request, standing(after, title=title))
        case Outcome.ALREADY:
            title = words._("{display} already has an invitation for this one.", display=asked.display)
            return await _with_askable(request, standing(after, title=title, notice_kind="info"))
        case Outcome.NOT_OFFERED:
            fix = words._("Please choose one of the people listed.")
            return await _with_askable(request, _problem(after, fix))
        case _:
            return await _answered(request, loop, asked.outcome, "")


async def _with_askable(request: web.Request, page: Page) -> Page:
    """The page with the agents this agent may ask, while the loop is open."""
    loop = page.loop
    if loop.closed or not loop.invite.agent.active:
        return page
    asking = await request.app[INSTRUCTIONS].askable(
        signal_id=loop.signal_id, agent_id=loop.agent_id, invitation_id=loop.invite.invitation_id
    )
    return replace(page, ask_names=asking.names) if asking.outcome is Outcome.RECORDED else page


async def _answered(  # noqa: PLR0911 - one return per outcome, checked complete by assert_never
    request: web.Request,
    loop: Loop,
    outcome: Outcome,
    said: str,
    *,
    note: str = "",
    closing: bool = False,
    unread: bool = False,
) -> Page:
    """What the relay made of an answer, in the page's words; refusals become 403 / 404 / 410 pages."""
    words = loop.words
    _ = words._
    display = loop.invite.agent.display
    match outcome:
        case Outcome.RECORDED if unread:
            return _problem(loop, _(CHOOSE))
        case Outcome.RECORDED if closing:
            thanks = _("Thank you, {display} — recorded: {label}", display=display, label=words.label(said))
            return standing(
                await _reload(request, loop), title=thanks, notice=_("The loop is closed. Thank you for being there.")
            )
        case Outcome.RECORDED:
            thanks = _("Thank you, {display} — recorded: {label}", display=display, label=words.label(said))
            return standing(
                await _reload(request, loop),
                title=thanks,
                notice=_("When you have been present, close the loop below."),
            )
        case Outcome.ALREADY:
            after = await _reload(request, loop)
            first = after.own_ack.action if after.own_ack else said
            nothing_changed = _("You had answered before; nothing changed.")
            title = _("Already recorded: {label}", label=words.label(first))
            return standing(after, title=title, notice=nothing_changed, notice_kind="info")
        case Outcome.ALREADY_DONE:
            return _closed(await _reload(request, loop))
        case Outcome.NOT_OFFERED | Outcome.ALREADY_ANSWERED:  # the latter only for a pass, which `_passed` words
            return _problem(loop, _(CHOOSE))
        case Outcome.BAD_OUTCOME:
            fix = _("Please say in a few words what happened (up to {count} characters).", count=OUTCOME_MAX)
            return _problem(loop, fix, close_open=True, outcome=said[:OUTCOME_MAX], note=note)
        case Outcome.NOTE_TOO_LONG:
            fix = _("The note can be up to {count} characters; please shorten it.", count=NOTE_MAX)
            return _problem(loop, fix, close_open=True, outcome=said, note=note)
        case Outcome.NOT_INVITED:
            raise ForbiddenError(NOT_YOURS)
        case Outcome.NO_SUCH_LOOP:
            raise NotFoundError(N_("The relay no longer knows this loop; nothing was recorded."))
        case Outcome.GONE:
            raise LinkExpiredError(PURGED)
        case _:
            assert_never(outcome)


# What a page says --------------------------------------------------------------------------


def standing(loop: Loop, **changes: Any) -> Page:
    """The invitation as it stands: response buttons until this agent answered, the close form until done."""
    _ = loop.words._
    page = Page(
        loop=loop,
        title=_("This loop is closed")
        if loop.closed
        else _("An invitation for {display}", display=loop.invite.agent.display),
        notice=_("Nothing more is needed — thank you.") if loop.closed else None,
        notice_kind="info" if loop.closed else "ok",
        offer_ack=not loop.closed and loop.own_ack is None,
        offer_done=not loop.closed,
        state_lines=state_lines(loop),
        close_open=loop.own_ack is not None,
        offer_pass=not loop.closed and loop.own_ack is None and loop.agent_id not in loop.passed,
        joined_lines=joined_lines(loop),
    )
    return replace(page, **changes)


def joined_lines(loop: Loop) -> list[tuple[str, str]]:
    """Each later signal that joined the loop, as its Slack message shows it (the whisper quoted as
    sent, an AiSHA signal's reasons in plain words), and when the relay received it, in the agent's zone."""
    words = loop.words
    return [
        (compose.joined_note(j.signal, words), words.moment(from_ms(j.received_at), loop.invite.agent.tz))
        for j in loop.joined
    ]


def state_lines(loop: Loop) -> list[str]:
    """Who is already here, in the words of the Slack message update; a done's note is not shown."""
    words = loop.words
    if loop.done is not None:
        label = words.label(loop.done.outcome)
        if loop.done.agent == loop.agent_id:
            return [words._("You closed the loop — {label}.", label=label)]
        return [words._("{who} closed the loop — {label}.", who=loop.done.display, label=label)]
    return [
        words._("You answered {label}.", label=words.label(ack.action))
        if ack.agent == loop.agent_id
        else compose.ack_note(ack.display, ack.action, words) + "."
        for ack in loop.acks
    ]


def _problem(loop: Loop, fix: str, *, close_open: bool = False, **typed: str) -> Page:
    """The invitation again, 400, with what to fix and what the person typed (a closed loop: 409)."""
    if loop.closed:
        return _closed(loop)
    title = loop.words._("Almost — one thing to fix")
    return standing(
        loop,
        status=400,
        code=BadRequestError.code,
        title=title,
        notice=fix,
        notice_kind="problem",
        **({"close_open": True} if close_open else {}),
        **typed,
    )


def _closed(loop: Loop) -> Page:
    """A late answer to a closed loop: 409 already_done, in kind words."""
    words = loop.words
    agent, display, outcome = (
        (loop.done.agent, loop.done.display, words.label(loop.done.outcome))
        if loop.done
        else ("", words._("Someone"), words._("closed"))
    )
    if agent == loop.agent_id:
        notice = words._(
            "You closed it — {outcome}. Nothing more is needed; this answer was not recorded.", outcome=outcome
        )
    else:
        notice = words._(
            "{who} closed it — {outcome}. Nothing more is needed; this answer was not recorded.",
            who=display,
            outcome=outcome,
        )
    return standing(
        loop,
        status=AlreadyDoneError.status,
        code=AlreadyDoneError.code,
        title=words._("This loop is already closed"),
        notice=notice,
    )


# Reading the link, the form and the loop ---------------------------------------------------


def _invitation_id(request: web.Request) -> int:
    """The invitation the token names; LinkExpired (410) or Forbidden (403) otherwise."""
    token = request.match_info["token"]
    if len(token) > TOKEN_MAX_CHARS:
        raise ForbiddenError(NOT_VALID)
    return request.app[TOKENS].read_action_token(token)


async def _load(request: web.Request, invitation_id: int) -> Loop:
    held = await request.app[INVITATIONS].held(invitation_id)
    if held is None:
        raise NotFoundError(
            N_("The relay no longer knows this invitation; answer from the original message if you still can.")
        )
    if held.invite is None:  # retention purged the signal's body: nothing left to show or answer
        raise LinkExpiredError(PURGED)
    view = held.view
    detail, joined = await request.app[INVITATIONS].detail_and_joined(view.signal_id)
    return Loop(
        view.signal_id,
        view.agent_id,
        view.loop_status,
        held.invite,
        detail.acks,
        detail.done,
        tuple(p.agent for p in detail.passes),
        joined,
    )


async def _reload(request: web.Request, loop: Loop) -> Loop:
    """The loop after an answer."""
    return await _load(request, loop.invite.invitation_id)


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


# Rendering -----------------------------------------------------------------------------------


def _page(request: web.Request, page: Page) -> web.Response:
    if page.code:
        request.app[METRICS].rejections.labels(page.code).inc()
    invite = page.loop.invite
    words = invite.words
    deep_link = invite.deep_link if urlsplit(invite.deep_link or "").scheme in ("http", "https") else None
    signal = invite.signal
    window = care_window(invite)
    now = datetime.fromtimestamp(request.app[CLOCK](), UTC)
    sent_at = signal.ts if signal.ts.tzinfo else signal.ts.replace(tzinfo=UTC)
    # now - ts, never ts + window: a sender's ts may sit at the end of the calendar (as the router reads it)
    window_passed = bool(window) and not page.loop.closed and now - sent_at > timedelta(minutes=window or 0)
    return pages.render(
        request,
        "link.html",
        status=page.status,
        page=page,
        title=page.title,
        code=page.code,
        words=words,
        headline=compose.headline(invite),
        details=[d for d in compose.details(invite) if not window_passed or d != compose.window_offer(invite)],
        sent_at=words.moment(signal.ts, invite.agent.tz),
        window_passed=window_passed,
        question=compose.question(invite),
        deep_link=deep_link,
        outcomes=_outcomes(invite),
        outcome_max=OUTCOME_MAX,
        note_max=NOTE_MAX,
    )


#: the usual endings the close form suggests first (the Slack modal's own)
USUAL_ENDINGS = ("held-space", "talked", "checked-in", "no-answer-needed")


def _outcomes(invite: Invite) -> list[tuple[str, str]]:
    """(slug, label) of the endings the close form suggests: the usual ones, then the loop's responses."""
    seen = dict.fromkeys((*USUAL_ENDINGS, *invite.responses))
    return [(slug, invite.words.label(slug)) for slug in seen]
