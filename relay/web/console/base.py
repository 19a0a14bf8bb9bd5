"""What every console page shares: the session check, the CSRF check, forms, rendering, redirects.

`@console_page` guards a handler: a page opened without a session goes to sign-in (and
back after); every POST must carry the session's CSRF token in its `csrf` field, else it
is refused with a 403 page that says so; a service's refusal (a `RelayError`) that the
handler did not word on its form becomes a calm page with the contract's status.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode

from aiohttp import web

from relay.bodies import media_type
from relay.errors import BadRequestError, ForbiddenError, PayloadTooLargeError, RelayError, UnsupportedMediaTypeError
from relay.keys import CONSOLE_SESSIONS, SETTINGS
from relay.web import pages
from relay.web.console.session import OneTimeTokens, Session, Sessions
from relay.words import english

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

SESSIONS = web.AppKey("console.sessions", Sessions)
#: dev mode's one-time sign-in tokens (the banner's link)
ONE_TIME = web.AppKey("console.one_time", OneTimeTokens)

HOME = "/console"
SIGN_IN = "/console/sign-in"
#: the largest console form: an agent's fields or a grant's
FORM_MAX_BYTES = 16 * 1024
FORM_MAX_FIELDS = 40
CSRF_REFUSED = (
    "This form was not sent from a console page of this session, so nothing was changed. "
    "Go back, reload the page and send it again."
)
#: a redirect's notice: only these fixed words are ever shown from a query string
NOTICES = {
    "signed-out": "You are signed out.",
    "agent-added": "The agent was added.",
    "agent-saved": "The agent was saved.",
    "agent-active": "The agent is active again.",
    "agent-inactive": "The agent is deactivated: nobody invites them until they are active again.",
    "agent-away": "The agent is away: routing passes them over until someone sets them back.",
    "agent-back": "The agent is back: routing invites them again.",
    "code-sent": "A new join code is on its way; the address is confirmed once its owner answers it.",
    "granted": "The consent grant was recorded.",
    "revoked": "The grant was revoked; invitations not yet sent under it will not be sent.",
    "retried": "The delivery will be tried again now, after the usual checks.",
}


@dataclass(frozen=True)
class SignedIn:
    name: str
    session: Session
    form: dict[str, str]


#: who is signed in, their CSRF token, and the form a POST sent
SIGNED_IN = web.RequestKey("console.signed_in", SignedIn)


def install(app: web.Application) -> None:
    app[SESSIONS] = Sessions(app[SETTINGS])
    app[ONE_TIME] = OneTimeTokens()


def redirect(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location, **pages.PAGE_HEADERS})


def with_query(path: str, **values: str | None) -> str:
    kept = {k: v for k, v in values.items() if v}
    return f"{path}?{urlencode(kept)}" if kept else path


def safe_next(value: str | None) -> str:
    """Where to go after sign-in: a console path of this site, else the console's first page."""
    if not value or not value.startswith(HOME) or "\\" in value or not value.isprintable():
        return HOME
    rest = value[len(HOME) :]
    if rest and rest[0] not in "/?":
        return HOME
    return value


def sign_in_url(request: web.Request) -> str:
    return with_query(SIGN_IN, next=request.path_qs if request.path_qs != HOME else None)


async def read_form(request: web.Request) -> dict[str, str]:
    """The urlencoded form, size-capped; a field named twice keeps every value, comma-joined."""
    if request.content_length is not None and request.content_length > FORM_MAX_BYTES:
        raise PayloadTooLargeError("This form is larger than the console takes.")
    if media_type(request) != "application/x-www-form-urlencoded":
        raise UnsupportedMediaTypeError("Send the console's forms from its pages.")
    body = await request.read()
    if len(body) > FORM_MAX_BYTES:
        raise PayloadTooLargeError("This form is larger than the console takes.")
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=FORM_MAX_FIELDS, errors="strict")
    except ValueError:
        raise BadRequestError("This form could not be read; send it again from the console page.") from None
    form: dict[str, str] = {}
    for name, value in pairs:
        form[name] = f"{form[name]},{value}" if name in form and name != "csrf" else form.get(name, value)
    return form


def csrf_matches(session: Session | None, form: dict[str, str]) -> bool:
    given = form.get("csrf", "")
    return session is not None and bool(given) and hmac.compare_digest(given.encode(), session.csrf.encode())


def render(
    request: web.Request,
    template: str,
    *,
    status: int = 200,
    session: Session | None = None,
    admin: str | None = None,
    cookie: Session | None = None,
    **context: Any,
) -> web.Response:
    """A console template with what every page shows: who is signed in, the CSRF token, a notice."""
    signed_in = request.get(SIGNED_IN)
    session = session or (signed_in.session if signed_in else None)
    notice = NOTICES.get(request.query.get("notice", ""))
    response = pages.render(
        request,
        f"console/{template}",
        status=status,
        words=english(),  # the console speaks to the people who run the circle, in English
        admin=admin or (signed_in.name if signed_in else None),
        csrf=session.csrf if session else "",
        notice=context.pop("notice", notice),
        path=request.path,
        **{"section": "", **context},
    )
    if cookie is not None:
        request.app[SESSIONS].write(response, cookie)
    return response


def problem(request: web.Request, error: RelayError, *, title: str | None = None) -> web.Response:
    """A refusal, calmly: what happened and what to do, with the contract's status."""
    return render(
        request,
        "problem.html",
        status=error.status,
        title=title or _TITLES.get(error.status, "That could not be done"),
        detail=error.detail,
        code=error.code,
    )


_TITLES = {
    403: "Not accepted",
    404: "Nothing here",
    409: "Already changed",
    413: "That form was too large",
    415: "That form could not be read",
}


async def signed_in_as(request: web.Request, session: Session | None) -> str | None:
    """Who the session is signed in as: its token still an admin's, and not signed out of on any replica
    (one indexed read, only for a session that is otherwise signed in)."""
    name = request.app[SESSIONS].admin(session)
    if name is None or session is None or session.sid is None:
        return None
    return None if await request.app[CONSOLE_SESSIONS].ended(session.sid) else name


def console_page(handler: Handler) -> Handler:
    """A signed-in page (GET) or action (POST, CSRF-checked); refusals become calm pages."""

    @pages.page
    async def guarded(request: web.Request) -> web.StreamResponse:
        session = request.app[SESSIONS].read(request)
        try:
            name = await signed_in_as(request, session)
            form = await read_form(request) if request.method == "POST" else {}
            if request.method == "POST" and not csrf_matches(session, form):
                raise ForbiddenError(CSRF_REFUSED)
            if name is None or session is None:
                if request.method == "POST":
                    raise ForbiddenError("Your session has ended, so nothing was changed; sign in and send it again.")
                return redirect(sign_in_url(request))
            request[SIGNED_IN] = SignedIn(name, session, form)
            return await handler(request)
        except RelayError as error:
            return problem(request, error)

    guarded.__name__ = handler.__name__
    guarded.__doc__ = handler.__doc__
    return guarded


def signed_in(request: web.Request) -> SignedIn:
    return request[SIGNED_IN]
