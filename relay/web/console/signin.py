"""Signing in to the console with an admin token, and out again.

The sign-in form has a CSRF token too: its session holds only that until someone signs
in. A RELAY_ADMINS token signs in as its name, a RELAY_ADMIN_TOKENS token as "admin"; in
dev mode, a one-time token from the banner's link signs in as "admin" once. Signing in
and out always starts a new session (a new CSRF token); signing out also ends the old one
for good, on every replica, so a copy of its cookie opens nothing.
"""

from __future__ import annotations

from aiohttp import web

from relay.errors import ForbiddenError, RelayError
from relay.keys import CONSOLE_SESSIONS, SETTINGS
from relay.web import pages
from relay.web.auth import UNNAMED_ADMIN, admin_of
from relay.web.console.base import (
    CSRF_REFUSED,
    ONE_TIME,
    SESSIONS,
    SIGN_IN,
    csrf_matches,
    problem,
    read_form,
    redirect,
    render,
    safe_next,
    signed_in_as,
    with_query,
)
from relay.web.console.session import DEV_ONCE, MAX_AGE_SEC, Session, fingerprint

REFUSED_SIGN_IN = "That is not one of this relay's admin tokens; nothing was signed in. Check it and try again."
#: an admin token is far shorter; anything longer is not one
TOKEN_MAX_CHARS = 512


def _form(
    request: web.Request,
    session: Session,
    *,
    next_path: str | None,
    once: str = "",
    status: int = 200,
    problem_text: str | None = None,
) -> web.Response:
    return render(
        request,
        "sign_in.html",
        status=status,
        session=session,
        # the form's cookie holds its CSRF token and nothing else: written again with a session's
        # signed-in fields, a signed-out copy would be signed afresh and outlive its sign-out
        cookie=Session(csrf=session.csrf),
        title="Sign in",
        next=safe_next(next_path),
        once=once[:TOKEN_MAX_CHARS] if request.app[SETTINGS].dev else "",
        problem_text=problem_text,
    )


@pages.page
async def handle_sign_in_page(request: web.Request) -> web.Response:
    """The sign-in form (already signed in: on to where the person was going)."""
    sessions = request.app[SESSIONS]
    session = sessions.read(request)
    if await signed_in_as(request, session) is not None:
        return redirect(safe_next(request.query.get("next")))
    return _form(
        request, session or sessions.fresh(), next_path=request.query.get("next"), once=request.query.get("once", "")
    )


@pages.page
async def handle_sign_in(request: web.Request) -> web.Response:
    """Check the token; a new signed-in session, and on to `next`."""
    sessions = request.app[SESSIONS]
    session = sessions.read(request)
    try:
        form = await read_form(request)
        if session is None or not csrf_matches(session, form):
            raise ForbiddenError(CSRF_REFUSED)
    except RelayError as error:
        return problem(request, error)
    token = form.get("token", "").strip()[:TOKEN_MAX_CHARS]
    once = form.get("once", "").strip()[:TOKEN_MAX_CHARS]
    signed: Session | None = None
    if token:
        name = admin_of(request.app[SETTINGS], token)
        if name is not None:
            signed = sessions.fresh(name, fingerprint(token))
    elif once and request.app[SETTINGS].dev and request.app[ONE_TIME].take(once):
        signed = sessions.fresh(UNNAMED_ADMIN, DEV_ONCE)
    if signed is None:
        wrong = (
            REFUSED_SIGN_IN if token or not once else "This sign-in link was used already; sign in with an admin token."
        )
        return _form(request, session, next_path=form.get("next"), status=403, problem_text=wrong)
    response = redirect(safe_next(form.get("next")))
    sessions.write(response, signed)
    return response


@pages.page
async def handle_sign_out(request: web.Request) -> web.Response:
    """End the session everywhere (a CSRF-checked form, so no other site can sign anyone out): its id is
    kept in storage until its cookie would have expired, so no copy of the cookie opens the console on any
    replica; the admin's other sessions stay as they are."""
    sessions = request.app[SESSIONS]
    session = sessions.read(request)
    try:
        form = await read_form(request)
        if not csrf_matches(session, form):
            raise ForbiddenError(CSRF_REFUSED)
    except RelayError as error:
        return problem(request, error)
    if session is not None and session.sid is not None and session.name is not None:
        await request.app[CONSOLE_SESSIONS].end(session.sid, session.name, lasts_sec=MAX_AGE_SEC)
    response = redirect(with_query(SIGN_IN, notice="signed-out"))
    sessions.write(response, sessions.fresh())
    return response
