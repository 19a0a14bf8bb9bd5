"""Loops: the list (open ones first), one loop's timeline, and retrying a failed delivery.

Reads go through `relay.views.Views` and `relay.deliveries.Deliveries`, the retry through
`Deliveries.retry` with the signed-in name as `by`: the admin API's and the CLI's code.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from aiohttp import web

from receivers import SENDERS
from relay.errors import NotFoundError, RelayError
from relay.keys import DELIVERIES, VIEWS
from relay.model import LOOP_STATUSES
from relay.redact import redact_numbers
from relay.web.console.base import console_page, problem, redirect, render, safe_next, signed_in, with_query

PAGE_SIZE = 25
#: the Loops page's filters: open loops first, then every loop, then one status at a time
OPEN = ("invited", "acked")
FILTERS = ("open", "all", *LOOP_STATUSES)


def before(request: web.Request) -> int | None:
    """The page's `before` row id; a value that is no row id is the first page."""
    value = request.query.get("before", "")
    return int(value) if value.isascii() and value.isdigit() and 0 < int(value) < 2**63 else None


def older(rows: list[dict[str, Any]], path: str, **query: str | None) -> str | None:
    """The link to the next (older) page, when this one was full."""
    if len(rows) < PAGE_SIZE:
        return None
    return with_query(path, **query, before=str(rows[-1]["row"]))


def loop_path(source: str | None, event_id: str | None) -> str | None:
    return f"/console/loops/{source}/{quote(event_id, safe='')}" if source and event_id else None


@console_page
async def handle_loops(request: web.Request) -> web.Response:
    """The loops, newest first: the open ones unless another filter is chosen."""
    chosen = request.query.get("status", "open")
    if chosen not in FILTERS:
        chosen = "open"
    statuses = list(OPEN) if chosen == "open" else [] if chosen == "all" else [chosen]
    rows = await request.app[VIEWS].inbox_page(
        statuses=statuses, before_id=before(request), limit=PAGE_SIZE, answers=True
    )
    return render(
        request,
        "loops.html",
        title="Loops",
        section="loops",
        loops=rows,
        filters=FILTERS,
        chosen=chosen,
        loop_path=loop_path,
        older=older(rows, "/console", status=chosen),
    )


@console_page
async def handle_loop(request: web.Request) -> web.Response:
    """One loop's timeline: received, the decision and its gates, invitations and their delivery, answers, done."""
    source, event_id = request.match_info["source"], request.match_info["event_id"]
    if source not in SENDERS:
        raise NotFoundError("No loop of that source; open it from the Loops page.")
    loop = await request.app[VIEWS].event_status(event_id, source)
    work = await request.app[DELIVERIES].of_loop(event_id, source)
    for row in work:
        row["last_error"] = redact_numbers(row["last_error"])
    invited = {(row["agent"], row["channel"]): row for row in work if row["kind"] == "invite"}
    return render(
        request,
        "loop.html",
        title=f"Loop {event_id}",
        section="loops",
        loop=loop,
        deliveries=[(i, invited.get((i["agent"], i["channel"]))) for i in loop["invitations"]],
        other_work=[row for row in work if row["kind"] != "invite"],
        back=request.path,
    )


@console_page
async def handle_retry(request: web.Request) -> web.Response:
    """Retry one failed delivery (the admin API's retry, by the signed-in admin); back where it was asked."""
    who = signed_in(request)
    back = safe_next(who.form.get("back"))
    try:
        await request.app[DELIVERIES].retry(request.match_info["outbox_id"], who.name)
    except RelayError as error:
        return problem(request, error, title="Not retried")
    return redirect(with_query(back.split("?")[0], notice="retried"))
