"""`GET /v1/events/{id}`: the sender reads a loop's status (status token or admin bearer).

API clients get the contract's JSON. A browser (`Accept: text/html`) gets a calm page for
the person in need (CONTRACT section 9), in `?lang=` or the browser's language: whether
their circle was invited, who is here with which response, and whether the loop was
closed with its outcome — display names and labels only: no phone numbers, notes, gates
or internals. A signal that joined a loop already open (CONTRACT section 10) says so and
shows that loop's people.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from receivers import SENDERS
from relay import compose
from relay.errors import BadRequestError, ForbiddenError, NotFoundError
from relay.keys import ACTOR_CONSENT, EVENT_ID, TOKENS, VIEWS
from relay.labels import N_
from relay.redact import without_numbers
from relay.web import pages
from relay.web.auth import require_admin
from relay.web.consent import consent_url
from relay.words import Words

_SOURCES = " or ".join(f"'{name}'" for name in SENDERS)
#: an event id on a log line is cut here: the path is the caller's, and no stored id is longer
MAX_LOGGED_ID = 200

#: what the page says about the circle, by the loop's status
CIRCLE_WORDS = {
    "invited": N_("Your circle was invited. Nobody has answered yet — they will see it when they can."),
    "acked": N_("Your circle was invited, and someone is here."),
    "done": N_("Your circle was invited, and the loop is closed."),
    "pending_consent": N_("Your circle has not been invited: your consent to invite them is not in place yet."),
}
NOT_INVITED = N_("Your signal was received. Nobody was invited this time.")
JOINED = N_(
    "Your signal joined a moment that was already open: it is part of the same loop, and nobody new was invited."
)


async def handle_event_status(request: web.Request) -> web.Response:
    event_id = request.match_info["event_id"]
    request[EVENT_ID] = event_id[:MAX_LOGGED_ID]
    source = request.query.get("source")
    if source is not None and source not in SENDERS:
        raise BadRequestError(f"source must be {_SOURCES}.")
    token = request.query.get("token")
    if token is not None:
        opened = request.app[TOKENS].read_status_token(token)
        if opened is None or opened[1] != event_id or (source is not None and source != opened[0]):
            raise ForbiddenError("This status token does not open this event; use the status_url from the 202.")
        source = opened[0]
    else:
        require_admin(request)
    status = await request.app[VIEWS].event_status(event_id, source)
    if status["status"] == "pending_consent" and await request.app[ACTOR_CONSENT].groups_of(
        status["source"], status["id"]
    ):  # CONTRACT section 10: the actor's own consent page, while its link opens
        received = datetime.fromisoformat(status["received_at"]).timestamp()
        url = consent_url(request, status["source"], status["id"], received)
        if url is not None:
            status["consent_url"] = url
    if "text/html" in request.headers.get("Accept", ""):
        return _page(request, status, await _joined_loop(request, status))
    return web.json_response(status)


async def _joined_loop(request: web.Request, status: dict[str, Any]) -> dict[str, Any] | None:
    """The open loop a `joined` signal joined, read as this page reads its own; None when there is none
    (or the relay no longer keeps it)."""
    joined_to = status.get("joined_to")
    if status["status"] != "joined" or not joined_to:
        return None
    try:
        return await request.app[VIEWS].event_status(joined_to, status["source"])
    except (NotFoundError, BadRequestError):
        return None


def _when(iso_ts: str, words: Words) -> str:
    try:
        ts = datetime.fromisoformat(iso_ts)
    except ValueError:
        return iso_ts
    return words.moment(ts if ts.tzinfo else ts.replace(tzinfo=UTC), None)


def _page(request: web.Request, status: dict[str, Any], joined_loop: dict[str, Any] | None = None) -> web.Response:
    """The loop for the person who sent the signal: only names, labels and whether it is closed (for a
    signal that joined an open loop, that loop's)."""
    words = pages.reader_words(request)
    loop = status if joined_loop is None else joined_loop
    done = loop.get("done")
    here = [
        compose.ack_note(ack["by"]["display"], without_numbers(ack["action"]), words) for ack in loop.get("acks", [])
    ]
    # the outcome is free text a person typed: a number in it is never shown in full (section 9)
    closed = compose.done_note(done["by"]["display"], without_numbers(done["outcome"]), words) if done else None
    joined = words._(JOINED) if status["status"] == "joined" else None
    circle = words._(CIRCLE_WORDS.get(loop["status"], NOT_INVITED)) if joined is None or joined_loop else None
    return pages.render(
        request,
        "status.html",
        status=200,
        words=words,
        headers={"Vary": "Accept, Accept-Language"},
        title=words._("Your signal"),
        code=None,
        circle=circle,
        joined=joined,
        received=_when(status["received_at"], words),
        here=here,
        closed=closed,
        loop_status=status["status"],
    )
