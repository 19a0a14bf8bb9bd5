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
no `text/html`) gets errors as the contract's JSON, as everywhere else. What a page says,
and its template's context, is `relay.web.link_page`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import assert_never

from aiohttp import web

from relay.answers import Ack, Done, Outcome, Pass
from relay.errors import AlreadyAnsweredError, ForbiddenError, LinkExpiredError, NotFoundError
from relay.keys import ANSWERS, INSTRUCTIONS, INVITATIONS, TOKENS
from relay.labels import N_
from relay.loop import NOTE_MAX, OUTCOME_MAX
from relay.web.form import TOKEN_MAX_CHARS, read_form
from relay.web.link_page import Loop, Page, already_closed, problem, render, standing
from relay.web.pages import page

log = logging.getLogger("care_relay.links")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

ROUTE = "/a/{token}"
VIA = "link"

# msgids: an error's detail is translated on its page (relay.web.pages), a notice here
NOT_VALID = N_("This link is not valid; open the link from your invitation as it was sent.")
NOT_YOURS = N_("This link belongs to someone who no longer answers for this care circle; nothing was recorded.")
CHOOSE = N_("Please choose one of the answers below.")
PURGED = N_("This invitation is older than the relay keeps messages; nothing more can be answered here.")


# The two handlers ------------------------------------------------------------------------


@page
async def handle_link_page(request: web.Request) -> web.Response:
    """Show the invitation and how to answer it; changes nothing (link previews must not ack)."""
    loop = await _load(request, _invitation_id(request))
    if not loop.invite.agent.active:
        raise ForbiddenError(NOT_YOURS)
    return render(request, await _with_askable(request, standing(loop)))


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
        return render(request, await _passed(request, loop, (await answers.record(passed)).outcome))
    if action == "ask":
        return render(request, await _asked(request, loop, form.get("agent", "")))
    if action == "ack":
        response = form.get("response", "")
        ack = Ack(loop.signal_id, agent_id, response, VIA, invitation_id=invitation_id)
        return render(request, await _answered(request, loop, (await answers.record(ack)).outcome, response))
    if action == "done":
        outcome = " ".join(form.get("outcome", "").split())
        note_field = form.get("note", "")
        note = "".join(c for c in note_field.replace("\r\n", "\n") if c in "\n\t" or c.isprintable()).strip()
        done = Done(loop.signal_id, agent_id, outcome, note, VIA, invitation_id=invitation_id)
        result = await answers.record(done)
        return render(request, await _answered(request, loop, result.outcome, outcome, note=note, closing=True))
    admitted = await answers.admit(
        signal_id=loop.signal_id, agent_id=agent_id, invitation_id=invitation_id, via=VIA, what="action link answer"
    )
    return render(request, await _answered(request, loop, admitted, "", unread=True))


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
            return await _with_askable(request, problem(after, fix))
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
            return problem(loop, _(CHOOSE))
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
            return already_closed(await _reload(request, loop))
        case Outcome.NOT_OFFERED | Outcome.ALREADY_ANSWERED:  # the latter only for a pass, which `_passed` words
            return problem(loop, _(CHOOSE))
        case Outcome.BAD_OUTCOME:
            fix = _("Please say in a few words what happened (up to {count} characters).", count=OUTCOME_MAX)
            return problem(loop, fix, close_open=True, outcome=said[:OUTCOME_MAX], note=note)
        case Outcome.NOTE_TOO_LONG:
            fix = _("The note can be up to {count} characters; please shorten it.", count=NOTE_MAX)
            return problem(loop, fix, close_open=True, outcome=said, note=note)
        case Outcome.NOT_INVITED:
            raise ForbiddenError(NOT_YOURS)
        case Outcome.NO_SUCH_LOOP:
            raise NotFoundError(N_("The relay no longer knows this loop; nothing was recorded."))
        case Outcome.GONE:
            raise LinkExpiredError(PURGED)
        case _:
            assert_never(outcome)


# Reading the link and the loop ------------------------------------------------------------


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
