"""What an action link's page shows: the loop as it stands, as a `Page`, rendered with link.html.

Handlers (relay.web.links) decide what happened; this module words it: the title, the
notice, which answers are still offered, who is already here, and the template's context.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from relay import compose
from relay.delivery import Invite, care_window
from relay.errors import AlreadyDoneError, BadRequestError
from relay.invitations import AckLine, DoneLine, Joined
from relay.keys import CLOCK, METRICS
from relay.loop import NOTE_MAX, OUTCOME_MAX
from relay.model import from_ms
from relay.web import pages
from relay.words import Words

__all__ = [
    "USUAL_ENDINGS",
    "Loop",
    "Page",
    "already_closed",
    "joined_lines",
    "outcomes",
    "problem",
    "render",
    "standing",
    "state_lines",
]


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


def problem(loop: Loop, fix: str, *, close_open: bool = False, **typed: str) -> Page:
    """The invitation again, 400, with what to fix and what the person typed (a closed loop: 409)."""
    if loop.closed:
        return already_closed(loop)
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


def already_closed(loop: Loop) -> Page:
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


# Rendering -----------------------------------------------------------------------------------


def render(request: web.Request, page: Page) -> web.Response:
    """The page as link.html, at its status; a refusal is counted by its code."""
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
        outcomes=outcomes(invite),
        outcome_max=OUTCOME_MAX,
        note_max=NOTE_MAX,
    )


#: the usual endings the close form suggests first (the Slack modal's own)
USUAL_ENDINGS = ("held-space", "talked", "checked-in", "no-answer-needed")


def outcomes(invite: Invite) -> list[tuple[str, str]]:
    """(slug, label) of the endings the close form suggests: the usual ones, then the loop's responses."""
    seen = dict.fromkeys((*USUAL_ENDINGS, *invite.responses))
    return [(slug, invite.words.label(slug)) for slug in seen]
