"""The SMS / WhatsApp reply grammar (CONTRACT.md section 4, "Agents answer"), pure.

Two steps, both free of I/O so that every rule is a row in a table test:

* :func:`parse` reads what the words say (case-insensitive, any spacing);
* :func:`resolve` reads what they mean for one agent's open invitations.

The grammar, as implemented::

    STOP | STOPALL | UNSUBSCRIBE | CANCEL | END | QUIT | REVOKE | OPTOUT   -> opt out of this channel
    START | UNSTOP | YES                                                  -> opt back in
    HELP | INFO                                                           -> nothing of ours
        (the whole message is the keyword, as Twilio matches them; Twilio answers these
        itself, so the relay never uses them as its own words)
    JOIN <code>                           -> the owner confirms this number (CONTRACT section 8)
    AWAY | BACK                           -> the agent is away (routing passes them over) or back
                                             (CONTRACT section 10)
    LIST                                  -> the agent's open invitations with their codes
    MENU                                  -> how to answer
    [CODE] <n | response>                 -> care.ack with the n-th suggested response (1-based)
                                             or the response named by its slug or its label in the
                                             agent's language ("hold space" = "hold-space")
    DONE [CODE] [outcome | n] [: note]    -> care.done; outcome defaults to "done", words are
                                             joined by "-" and lower-cased; n names a suggested response
    PASS [CODE]                           -> "not now" (CONTRACT section 10): kept and thanked
    CODE                                  -> a reminder of how to answer that invitation

The CODE may be left out when exactly one invitation is open. A first word is taken as
a code when it is one of the agent's open codes (any case); a code-shaped word that is not
(4 characters of the code alphabet, typed in capitals or holding a digit: "K7QX",
"k7qx", "CALM" but not "calm") is an unknown code rather than a response or an outcome,
so that a stale or mistyped code never closes another loop. A trailing ".", "!" or ","
on a word is ignored; a DONE note keeps its own case and punctuation.

The wording of the relay's answers lives here too: short and soft, in the agent's language
(`relay.words.Words`; English when none is given).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from relay.compose import MAX_TEXT_CHARS, RESPONSE_CHARS, SENDER_CHARS
from relay.labels import N_
from relay.loop import NOTE_MAX, OUTCOME_MAX
from relay.text import clip, one_line, size
from relay.words import Words, english

#: inbox.reply_codes.CODE_ALPHABET (kept here so the grammar stays free of storage imports).
CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 4
DEFAULT_OUTCOME = "done"
MAX_OUTCOME = OUTCOME_MAX
MAX_NOTE = NOTE_MAX
EXAMPLE_CODE = "K7QX"

#: Twilio's default keywords (SMS Advanced Opt-Out): whole-message, case-insensitive.
OPT_OUT_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"})
OPT_IN_WORDS = frozenset({"START", "UNSTOP", "YES"})
HELP_WORDS = frozenset({"HELP", "INFO"})

_CODE_SHAPE = re.compile(f"^[{CODE_ALPHABET}]{{{CODE_LENGTH}}}$")
_TRAILING = ".!,"


# What the words say ----------------------------------------------------------------


@dataclass(frozen=True)
class TwilioKeyword:
    """A word Twilio keeps for itself; only opt-out / opt-in change anything of ours."""

    kind: Literal["opt_out", "opt_in", "help"]


@dataclass(frozen=True)
class ListOpen:
    """LIST"""


@dataclass(frozen=True)
class ShowMenu:
    """MENU"""


@dataclass(frozen=True)
class Answer:
    """`[CODE] <n|response>` (or a lone CODE): the words after normalising."""

    words: tuple[str, ...]


@dataclass(frozen=True)
class Close:
    """`DONE [CODE] [outcome] [: note]`: the words between DONE and the colon, and the note."""

    words: tuple[str, ...]
    note: str = ""


@dataclass(frozen=True)
class Blank:
    """Nothing but spaces."""


@dataclass(frozen=True)
class JoinWith:
    """`JOIN <code>`: the owner of an address confirms it with the code it was sent ("" if none given)."""

    code: str


@dataclass(frozen=True)
class SetAway:
    """`AWAY` (True) or `BACK` (False): the agent's own away switch (CONTRACT section 10)."""

    away: bool


@dataclass(frozen=True)
class PassOn:
    """`PASS [CODE]`: the words after PASS."""

    words: tuple[str, ...]


Command = TwilioKeyword | ListOpen | ShowMenu | Answer | Close | Blank | JoinWith | SetAway | PassOn


def _words(text: str) -> tuple[str, ...]:
    return tuple(w for w in (word.rstrip(_TRAILING) for word in text.split()) if w)


#: whole-message keywords (Twilio's own, matched as Twilio matches them) and the relay's one-word commands.
_KEYWORDS: dict[str, Command] = {
    **dict.fromkeys(OPT_OUT_WORDS, TwilioKeyword("opt_out")),
    **dict.fromkeys(OPT_IN_WORDS, TwilioKeyword("opt_in")),
    **dict.fromkeys(HELP_WORDS, TwilioKeyword("help")),
}
_ONE_WORD: dict[str, Command] = {"LIST": ListOpen(), "MENU": ShowMenu(), "AWAY": SetAway(True), "BACK": SetAway(False)}


def parse(text: str) -> Command:
    """What an SMS / WhatsApp reply says, before looking at the agent's invitations."""
    clean = " ".join(text.split())
    keyword = _KEYWORDS.get(clean.upper())
    if keyword is not None:
        return keyword
    head, colon, note = clean.partition(":")
    head_words = _words(head)
    if head_words and head_words[0].upper() == "DONE":
        return Close(head_words[1:], note.strip()[:MAX_NOTE] if colon else "")
    words = _words(clean)
    if words and words[0].upper() == "PASS":
        return PassOn(words[1:])
    if words and words[0].upper() == "JOIN" and len(words) <= 2:
        return JoinWith(words[1].upper() if len(words) == 2 else "")
    if len(words) == 1 and words[0].upper() in _ONE_WORD:
        return _ONE_WORD[words[0].upper()]
    return Answer(words) if words else Blank()


# What they mean for this agent -------------------------------------------------------


@dataclass(frozen=True)
class OpenInvite:
    """One of the agent's open invitations, as the grammar needs it."""

    code: str
    responses: tuple[str, ...]
    #: each response's label as the agent reads it (a typed label answers like the slug)
    labels: tuple[str, ...] = ()


@dataclass(frozen=True)
class Ack:
    code: str
    response: str


@dataclass(frozen=True)
class Done:
    code: str
    outcome: str
    note: str


@dataclass(frozen=True)
class NotNow:
    """PASS on one open invitation."""

    code: str


@dataclass(frozen=True)
class Remind:
    """A lone code: say again how to answer that invitation."""

    code: str


ProblemReason = Literal["no_open", "need_code", "unknown_code", "bad_choice", "not_understood"]


@dataclass(frozen=True)
class Problem:
    """An answer that cannot be taken; `code` is set when it concerned one open invitation."""

    reason: ProblemReason
    code: str | None = None
    #: the unknown code as typed (upper-cased), for the answer's wording.
    typed: str | None = None


Reading = Ack | Done | NotNow | Remind | Problem | TwilioKeyword | ListOpen | ShowMenu | JoinWith | SetAway


def looks_like_code(word: str) -> bool:
    """4 characters of the code alphabet, typed in capitals or holding a digit."""
    return bool(_CODE_SHAPE.match(word.upper())) and (word.isupper() or any(c.isdigit() for c in word))


def canonical(response: str) -> str:
    """Responses compare loosely: "Hold Space", "hold_space" and "hold-space" are the same."""
    return "-".join(re.split(r"[\s_-]+", response.strip().casefold()))


def _pick(words: tuple[str, ...], opens: Sequence[OpenInvite]) -> tuple[OpenInvite | Problem, tuple[str, ...], bool]:
    """(the invitation or why none, remaining words, code given?) for words that may start with a code."""
    if words:
        first = words[0].upper()
        for invite in opens:
            if invite.code.upper() == first:
                return invite, words[1:], True
        if looks_like_code(words[0]):
            return Problem("unknown_code", typed=first), words, True
    if not opens:
        return Problem("no_open"), words, False
    if len(opens) > 1:
        return Problem("need_code"), words, False
    return opens[0], words, False


def _choice(words: tuple[str, ...], invite: OpenInvite) -> str | None:
    """The suggested response named by a 1-based number or by its words; None if neither."""
    text = " ".join(words)
    if text.isascii() and text.isdigit():
        n = int(text)
        return invite.responses[n - 1] if 1 <= n <= len(invite.responses) else None
    wanted = canonical(text)
    found = next((r for r in invite.responses if canonical(r) == wanted), None)
    if found is None:
        found = next((r for r, t in zip(invite.responses, invite.labels, strict=False) if canonical(t) == wanted), None)
    return found


def _close(invite: OpenInvite, rest: tuple[str, ...], note: str) -> Done | Problem:
    """DONE: the outcome named (a number picks a suggested response), or "done" when none is."""
    if not rest:
        return Done(invite.code, DEFAULT_OUTCOME, note)
    numbered = " ".join(rest).isascii() and " ".join(rest).isdigit()
    chosen = _choice(rest, invite) if numbered else "-".join(w.casefold() for w in rest)
    if chosen is None:
        return Problem("bad_choice", invite.code)
    return Done(invite.code, canonical(chosen)[:MAX_OUTCOME], note)


def resolve(command: Command, opens: Sequence[OpenInvite]) -> Reading:  # noqa: PLR0911 - one per reading
    """What a parsed reply means, given the agent's open invitations (oldest first)."""
    if isinstance(command, (TwilioKeyword, ListOpen, ShowMenu, JoinWith, SetAway)):
        return command
    if isinstance(command, Blank):
        return Problem("not_understood")
    invite, rest, code_given = _pick(command.words, opens)
    if isinstance(invite, Problem):
        return invite
    if isinstance(command, Close):
        return _close(invite, rest, command.note)
    if isinstance(command, PassOn):
        return Problem("not_understood", invite.code) if rest else NotNow(invite.code)
    if not rest:
        return Remind(invite.code) if code_given else Problem("not_understood")
    response = _choice(rest, invite)
    return Problem("bad_choice", invite.code) if response is None else Ack(invite.code, response)


# The relay's answers -------------------------------------------------------------------


def choices(invite: OpenInvite) -> str:
    """`1 Check in gently, 2 Hold space` (the slugs when no labels are known), each on one line and bounded."""
    shown = invite.labels if len(invite.labels) == len(invite.responses) else invite.responses
    return ", ".join(f"{n} {clip(one_line(r), RESPONSE_CHARS)}" for n, r in enumerate(shown, start=1))


#: what a JOIN that did not confirm says, by why (msgids: translate with `Words._`)
NOT_JOINED = {
    "already": N_("This number is already confirmed — thank you. Reply STOP to refuse invitations here."),
    "wrong_code": N_("That code does not match the one sent to this number. Ask your admin to send a new one."),
    #: a message from a number its owner has not confirmed, when no join code waits for it
    "unconfirmed": N_(
        "This number is not confirmed for care-relay yet, so nothing is sent here. Ask your admin to send a join code."
    ),
}


def not_joined(reason: str, words: Words | None = None) -> str:
    """A JOIN that did not confirm, in the agent's words."""
    return (words or english())._(NOT_JOINED[reason])


def menu_text(example: str | None = None, words: Words | None = None) -> str:
    """MENU: how to answer, with one of the agent's own codes as the example when there is one."""
    words = words or english()
    return words._(
        'To answer, send the code and a number, e.g. "{code} 1". '
        'When you are finished: "DONE {code} held-space: a short note". '
        '"PASS {code}" says not now. '
        "LIST shows your open invitations. With only one open, the code can be left out.",
        code=example or EXAMPLE_CODE,
    )


def listing_text(items: Sequence[tuple[OpenInvite, str]], *, limit: int = 5, words: Words | None = None) -> str:
    """LIST: each open invitation's code, who it is from, and its numbered choices, in the order given.

    One message: at most `limit` invitations, and only as many as fit in `MAX_TEXT_CHARS` (Twilio
    refuses a longer body); the last line says how many more there are.
    """
    _ = (words or english())._
    if not items:
        return _("You have no open invitations right now.")

    def more(count: int) -> list[str]:
        return [_("…and {count} more.", count=count)] if count > 0 else []

    header = _("Open invitations:")
    lines = [f"{invite.code} — {clip(one_line(who), SENDER_CHARS)}: {choices(invite)}" for invite, who in items]
    shown: list[str] = []
    for line in lines[:limit]:
        if size("\n".join([header, *shown, line, *more(len(items) - len(shown) - 1)])) > MAX_TEXT_CHARS:
            break
        shown.append(line)
    if not shown:  # bounded parts always fit one; should a catalog's words grow, the first is cut to fit
        room = MAX_TEXT_CHARS - size("\n".join([header, *more(len(items) - 1)])) - 1
        shown = [clip(lines[0], room)]
    return "\n".join([header, *shown, *more(len(items) - len(shown))])


def problem_text(problem: Problem, opens: Sequence[OpenInvite], words: Words | None = None) -> str:
    """A kind answer to something the relay could not take, ending with how to answer."""
    words = words or english()
    _ = words._
    example = opens[0].code if opens else None
    if problem.reason == "no_open":
        return _("You have no open invitations right now, so there is nothing to answer. Thank you.")
    if problem.reason == "need_code":
        codes = ", ".join(o.code for o in opens)
        return words.n_(
            'You have {n} open invitation ({codes}). Please put the code first, e.g. "{code} 1".',
            'You have {n} open invitations ({codes}). Please put the code first, e.g. "{code} 1".',
            len(opens),
            codes=codes,
            code=opens[0].code,
        )
    if problem.reason == "unknown_code":
        return (
            _("I don't have an open invitation {code} for you.", code=problem.typed) + " " + menu_text(example, words)
        )
    if problem.reason == "bad_choice" and problem.code is not None:
        invite = next((o for o in opens if o.code == problem.code), None)
        if invite is not None:
            return _(
                'For {code} you can answer {choices} — e.g. "{code} 1".', code=invite.code, choices=choices(invite)
            )
    return _("Sorry, I didn't understand that.") + " " + menu_text(example, words)


def thanks(display: str, what: str, words: Words | None = None) -> str:
    """`Thank you, Ana — recorded: Check in gently.`"""
    return (words or english())._("Thank you, {display} — {what}.", display=display, what=what)


def away_text(display: str, away: bool, words: Words | None = None) -> str:
    """The answer to AWAY or BACK: one short, kind sentence."""
    _ = (words or english())._
    if away:
        return _("Rest well, {display} — no invitations will reach you until you send BACK.", display=display)
    return _("Welcome back, {display} — gentle invitations can reach you again.", display=display)
