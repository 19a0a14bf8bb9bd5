"""Pages for people: one template environment, the headers every page carries, and the error page.

A route is a page when its handler is marked with `@page`; the errors middleware then
renders that route's errors here, as HTML with the contract's status and code kept
visible (`data-status` / `data-code` on `<main>`), unless the client asks for JSON only.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import jinja2
from aiohttp import web

from relay.errors import RelayError
from relay.keys import LEXICON
from relay.labels import N_
from relay.words import Words

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: The pages' templates, loaded once per app by `install`.
TEMPLATES = web.AppKey("pages.templates", jinja2.Environment)

PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex, nofollow",
    "X-Content-Type-Options": "nosniff",
    # Inline CSS and a form that posts to itself: nothing else, no script, no framing.
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
}
ERROR_TITLES = {
    "link_expired": N_("This link has expired"),
    "forbidden": N_("This link does not open"),
    "not_found": N_("Nothing to answer here"),
    "payload_too_large": N_("That was more than this form takes"),
    "unavailable": N_("Nothing was recorded — please try again"),
}
_PAGE_MARK = "renders_pages"


def install(app: web.Application) -> None:
    """The template environment (autoescaped, strict about missing values)."""
    app[TEMPLATES] = jinja2.Environment(
        loader=jinja2.PackageLoader("relay.web", "templates"),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def page(handler: Handler) -> Handler:
    """Mark a handler as answering people: its errors become the HTML error page."""
    setattr(handler, _PAGE_MARK, True)
    return handler


def wants_page(request: web.Request) -> bool:
    """The route is a page and the client did not ask for JSON only."""
    handler = getattr(request.match_info, "handler", None)
    if not getattr(handler, _PAGE_MARK, False):
        return False
    accept = request.headers.get("Accept", "")
    return not ("application/json" in accept and "text/html" not in accept)


def reader_words(request: web.Request) -> Words:
    """The language of someone the relay does not know: `?lang=`, else the browser's, else English."""
    return request.app[LEXICON].for_reader(request.query.get("lang"), request.headers.get("Accept-Language", ""))


def render(
    request: web.Request,
    template: str,
    *,
    status: int,
    words: Words,
    headers: dict[str, str] | None = None,
    **context: Any,
) -> web.Response:
    """A template as an HTML answer with the page headers, worded in `words` (`_` in the template)."""
    html = (
        request.app[TEMPLATES]
        .get_template(template)
        .render(status=status, _=words._, lang=words.locale, words=words, **context)
    )
    return web.Response(
        text=html,
        status=status,
        content_type="text/html",
        charset="utf-8",
        headers={**PAGE_HEADERS, **(headers or {})},
    )


def error_page(request: web.Request, error: RelayError) -> web.Response:
    """A page that cannot show what it was asked for (expired, not valid, not yours, gone, unreadable)."""
    words = reader_words(request)
    return render(
        request,
        "link_error.html",
        status=error.status,
        words=words,
        headers=error.headers(),
        title=words._(ERROR_TITLES.get(error.code, N_("That answer could not be read"))),
        code=error.code,
        detail=words._(error.detail),
    )
