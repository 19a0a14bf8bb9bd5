"""`GET /c/{token}` and `POST /c/{token}`: the actor's own consent page (CONTRACT section 10).

The token (relay.tokens, its own salt, RELAY_LINK_MAX_AGE_SEC) names one `pending_consent`
M3 signal; the sender's app shows it to its user. A GET never writes: it asks "Would you
like your care-circle to be invited when you send a signal?" until a live grant the actor
made covers this signal (its type and its groups), then offers "Stop inviting my circle"; the
stop is offered whenever any grant of theirs is live, as it revokes them all. The POST is a form that posts to the same capability
URL, as the action link's answer form does, so a cross-site page cannot forge it without
the token; `action=yes` or `action=stop`, anything else is a 400. In `?lang=` or the
browser's language.
"""

from __future__ import annotations

from aiohttp import web

from relay.actors import Asked
from relay.errors import BadRequestError, ForbiddenError, NotFoundError
from relay.keys import ACTOR_CONSENT, TOKENS
from relay.labels import N_
from relay.web import pages
from relay.web.form import TOKEN_MAX_CHARS, read_form
from relay.web.pages import page

ROUTE = "/c/{token}"
NOT_VALID = N_("This link is not valid; open the consent link as the app showed it.")
NO_CIRCLE = N_("This signal names no care circle the relay knows; there is nothing to consent to here.")


def consent_url(request: web.Request, source: str, event_id: str, received_at: float) -> str | None:
    """The path of the actor's own consent page for a `pending_consent` signal received at
    `received_at` (Unix seconds): the same path whenever it is asked for, and None once it no
    longer opens (RELAY_LINK_MAX_AGE_SEC after the signal)."""
    tokens = request.app[TOKENS]
    if not tokens.consent_open(received_at):
        return None
    return f"/c/{tokens.consent_token(source, event_id, received_at)}"


def _signal_of(request: web.Request) -> tuple[str, str]:
    token = request.match_info["token"]
    if len(token) > TOKEN_MAX_CHARS:
        raise ForbiddenError(NOT_VALID)
    return request.app[TOKENS].read_consent_token(token)


@page
async def handle_consent_page(request: web.Request) -> web.Response:
    """The calm question, or "Stop inviting my circle" once the actor's yes covers this signal; changes nothing."""
    asked = await request.app[ACTOR_CONSENT].asked(*_signal_of(request))
    if not asked.groups and not asked.own_grants:
        raise NotFoundError(NO_CIRCLE)
    return _render(request, asked)


@page
async def handle_consent_answer(request: web.Request) -> web.Response:
    """`action=yes`: the actor's grant and the signal decided again; `action=stop`: their grants revoked."""
    source, event_id = _signal_of(request)
    form = await read_form(request)
    service = request.app[ACTOR_CONSENT]
    match form.get("action", ""):
        case "yes":
            asked = await service.yes(source, event_id)
            return _render(request, asked, said="yes")
        case "stop":
            asked = await service.stop(source, event_id)
            return _render(request, asked, said="stop")
        case _:
            raise BadRequestError(N_("Answer with the buttons on the consent page."))


def _render(request: web.Request, asked: Asked, said: str = "") -> web.Response:
    words = pages.reader_words(request)
    _ = words._
    if said == "yes":
        title = _("Thank you — your circle will be invited when you send a signal.")
        if asked.status in ("invited", "acked", "done"):
            circle = _("Your circle was invited for the signal you just sent.")
        elif asked.status == "joined":
            circle = _("Your circle already has your earlier signal open; this one was added to it.")
        else:
            circle = _(
                "Your circle was not invited for this signal: {why}", why=_(WHY.get(asked.status, NOT_THIS_TIME))
            )
    elif said == "stop":
        title = _("Your circle will not be invited when you send a signal.")
        circle = _("You can say yes again from a later signal's page.")
    elif asked.covered:
        title = _("Your circle is invited when you send a signal.")
        circle = _("You said yes before. You can stop it here at any time.")
    else:
        title = _("Would you like your care-circle to be invited when you send a signal?")
        circle = (
            _("You said yes before for other signals; this one is not covered yet. Nothing happens until you say yes.")
            if asked.own_grants
            else _("Only the people of your care circle are invited, gently. Nothing happens until you say yes.")
        )
    return pages.render(
        request,
        "consent.html",
        status=200,
        words=words,
        headers={"Vary": "Accept-Language"},
        title=title,
        circle=circle,
        offer_yes=not asked.covered,
        offer_stop=bool(asked.own_grants),
        loop_status=asked.status,
        code=None,
    )


NOT_THIS_TIME = N_("nobody could be reached just now.")
WHY = {
    "window_passed": N_("the time you hoped for had passed."),
    "pending_consent": N_("your consent does not cover this signal."),
}
