"""Loops: the list (open ones first), one loop's timeline, inviting agents now, and retrying a
failed delivery.

Reads go through `relay.views.Views` and `relay.deliveries.Deliveries`; invite now through
`Instructions.invite_now` and the retry through `Deliveries.retry`, each with the signed-in
name as `by`: the admin API's and the CLI's code. Invite now's answer (who was invited and on
which channel, who held an invitation already, or why nobody was) is shown on the loop's page.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from aiohttp import web

from receivers import SENDERS
from relay.errors import NotFoundError, RelayError
from relay.keys import DELIVERIES, DIRECTORY, INSTRUCTIONS, VIEWS
from relay.model import LOOP_STATUSES
from relay.redact import redact_numbers
from relay.web.console.agents import refusal_lines
from relay.web.console.base import console_page, problem, redirect, render, safe_next, signed_in, with_query

PAGE_SIZE = 25
#: invite now with no agent ticked (the service's 422)
NOBODY_CHOSEN = "Tick at least one agent to invite. Nobody was invited."
#: what a person can do about a refusal of invite now, after the service's words
NEXT_STEP = {
    "consent_required": "Record a consent grant on the Consent page first. Nobody was invited.",
    "already_done": "Nobody was invited.",
}
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


@dataclass(frozen=True)
class InviteAnswer:
    """Invite now's answer as the loop's page words it: who was invited (name, channel), who held
    an invitation already, or the refusal's lines (nobody invited)."""

    invited: list[tuple[str, str]] = field(default_factory=list)
    already: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    code: str = ""


def _loop_of(request: web.Request) -> tuple[str, str]:
    source, event_id = request.match_info["source"], request.match_info["event_id"]
    if source not in SENDERS:
        raise NotFoundError("No loop of that source; open it from the Loops page.")
    return source, event_id


async def _loop_page(
    request: web.Request, source: str, event_id: str, *, answer: InviteAnswer | None = None, status: int = 200
) -> web.Response:
    loop = await request.app[VIEWS].event_status(event_id, source)
    done = loop.get("done")
    if done:  # an agent's note or typed outcome may quote a number: never in full here
        done["note"] = redact_numbers(done.get("note") or "")
        done["outcome"] = redact_numbers(done.get("outcome") or "")
    for ack in loop.get("acks", []):  # a done with no ack before it counts as an ack with its outcome
        ack["action"] = redact_numbers(ack.get("action") or "")
    work = await request.app[DELIVERIES].of_loop(event_id, source)
    for row in work:
        row["last_error"] = redact_numbers(row["last_error"])
    invited = {(row["agent"], row["channel"]): row for row in work if row["kind"] == "invite"}
    holding = {i["agent"] for i in loop["invitations"] if i["status"] != "skipped"}
    return render(
        request,
        "loop.html",
        status=status,
        title=f"Loop {event_id}",
        section="loops",
        loop=loop,
        deliveries=[(i, invited.get((i["agent"], i["channel"]))) for i in loop["invitations"]],
        other_work=[row for row in work if row["kind"] != "invite"],
        agents=await request.app[DIRECTORY].agents() if loop["status"] != "done" else [],
        holding=holding,
        answer=answer,
        loop_path=loop_path,
        back=loop_path(source, event_id),
    )


@console_page
async def handle_loop(request: web.Request) -> web.Response:
    """One loop's timeline: received, the decision and its gates, joined signals, invitations (who asked for
    them) and their delivery, answers, done; and the invite-now form while it is not done."""
    source, event_id = _loop_of(request)
    return await _loop_page(request, source, event_id)


def refused_lines(error: RelayError, chosen: list[str]) -> list[str]:
    """Why nobody was invited, as lines a person reads."""
    if error.status == 422:
        return [NOBODY_CHOSEN] if not chosen else [*refusal_lines(error), "Nobody was invited."]
    return [error.detail, *([NEXT_STEP[error.code]] if error.code in NEXT_STEP else [])]


@console_page
async def handle_invite_now(request: web.Request) -> web.Response:
    """Invite the ticked agents now (Instructions.invite_now, by the signed-in admin); the loop's page
    with the answer, or with why nobody was invited (400, 409, 422) in the contract's status."""
    source, event_id = _loop_of(request)
    who = signed_in(request)
    chosen = [agent for agent in who.form.get("agents", "").split(",") if agent]
    names = {agent["id"]: agent["display"] for agent in await request.app[DIRECTORY].agents()}
    try:
        result = await request.app[INSTRUCTIONS].invite_now(event_id, {"agents": chosen, "by": who.name}, source=source)
    except RelayError as error:
        if error.status == 404:
            raise
        lines = refused_lines(error, chosen)
        return await _loop_page(
            request, source, event_id, answer=InviteAnswer(refused=lines, code=error.code), status=error.status
        )
    answer = InviteAnswer(
        invited=[(names.get(i["agent"], i["agent"]), i["channel"]) for i in result["invited"]],
        already=[names.get(agent, agent) for agent in result["already_invited"]],
    )
    return await _loop_page(request, source, event_id, answer=answer)


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
