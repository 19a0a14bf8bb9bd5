"""What a Slack user reads back: the msgids, and each answer's `Outcome` in Slack's words.

Each map is checked complete (`match` with `assert_never` where every outcome has its own
words); the words are translated into the agent's language by the `Words` given.
"""

from __future__ import annotations

from typing import Any, assert_never

from relay.answers import Outcome
from relay.channels.slack import blocks
from relay.labels import N_
from relay.words import Words, english

__all__ = [
    "ACKED_NO_PASS",
    "ALREADY_ACKED",
    "ALREADY_DONE",
    "ASKED",
    "ASKED_BEFORE",
    "AWAY_TEXT",
    "BACK_TEXT",
    "CANNOT_ASK",
    "GONE",
    "JOINED_BEFORE",
    "JOIN_STALE",
    "NOBODY_TO_ASK",
    "NOT_AN_AGENT",
    "NOT_OFFERED",
    "PASSED",
    "PASSED_BEFORE",
    "REFUSED",
    "TRY_AGAIN",
    "ack_words",
    "ask_words",
    "done_words",
    "pass_words",
]

# What a person reads back, as msgids: each answer translates them into the agent's language.
REFUSED = N_("This invitation was for someone else — thank you for caring.")
NOT_AN_AGENT = N_("The care relay only answers people in its directory — thank you for caring.")
ALREADY_DONE = N_("Someone already closed this loop — thank you for being there.")
ALREADY_ACKED = N_("You already said you're here for this one — thank you.")
NOT_OFFERED = N_("That answer is not offered for this invitation.")
GONE = N_("This invitation is no longer here.")
TRY_AGAIN = N_("That could not be recorded just now; please try again in a moment.")
JOINED_BEFORE = N_("You already joined here — thank you.")
JOIN_STALE = N_("This Join button is no longer current; ask your admin to send a new one.")
#: `/care away` and `/care back` (CONTRACT section 10)
AWAY_TEXT = N_("Rest well — no invitations will reach you until you say /care back.")
BACK_TEXT = N_("Welcome back — gentle invitations can reach you again.")
#: "Not now" and "Ask someone else" (CONTRACT section 10)
PASSED = N_("Thank you for saying so — nothing more is needed from you for this one.")
PASSED_BEFORE = N_("You already said not now for this one — thank you.")
ACKED_NO_PASS = N_("You already said you're here for this one; close the loop when you have been present.")
NOBODY_TO_ASK = N_("There is nobody else in this circle who can be invited right now.")
ASKED = N_("{display} is invited — thank you for thinking of them.")
ASKED_BEFORE = N_("{display} already has an invitation for this one.")
CANNOT_ASK = N_("{display} cannot be invited for this one right now.")


def ack_words(outcome: Outcome, words: Words | None = None) -> str | None:  # noqa: PLR0911 - one per outcome
    """What the presser sees after a response button; None when the ack is recorded (the DM updates)."""
    _ = (words or english())._
    match outcome:
        case Outcome.RECORDED:
            return None
        case Outcome.ALREADY:
            return _(ALREADY_ACKED)
        case Outcome.ALREADY_DONE:
            return _(ALREADY_DONE)
        case Outcome.NOT_INVITED:
            return _(REFUSED)
        case Outcome.NOT_OFFERED:
            return _(NOT_OFFERED)
        case Outcome.ALREADY_ANSWERED:
            return _(ACKED_NO_PASS)
        case Outcome.GONE | Outcome.NO_SUCH_LOOP | Outcome.BAD_OUTCOME | Outcome.NOTE_TOO_LONG:
            return _(GONE)
        case _:
            assert_never(outcome)


def pass_words(outcome: Outcome, words: Words) -> str:
    """What the presser of "Not now" sees: thanks, or why it was not kept."""
    match outcome:
        case Outcome.RECORDED:
            return words._(PASSED)
        case Outcome.ALREADY:
            return words._(PASSED_BEFORE)
        case _:
            return ack_words(outcome, words) or words._(GONE)


def done_words(outcome: Outcome, words: Words | None = None) -> dict[str, Any]:
    """The close modal's answer to its submission: empty closes it."""
    words = words or english()
    _ = words._
    match outcome:
        case Outcome.RECORDED:
            return {}
        case Outcome.BAD_OUTCOME:
            return {"response_action": "errors", "errors": {blocks.OUTCOME_BLOCK: _("Pick how it ended.")}}
        case Outcome.NOTE_TOO_LONG:
            too_long = _("Keep the note under {count} characters.", count=blocks.NOTE_MAX)
            return {"response_action": "errors", "errors": {blocks.NOTE_BLOCK: too_long}}
        case Outcome.NOT_INVITED:
            return {"response_action": "update", "view": blocks.message_view(_(REFUSED), words)}
        case Outcome.ALREADY_DONE:
            return {"response_action": "update", "view": blocks.message_view(_(ALREADY_DONE), words)}
        case Outcome.GONE | Outcome.NO_SUCH_LOOP | Outcome.ALREADY | Outcome.NOT_OFFERED | Outcome.ALREADY_ANSWERED:
            return {"response_action": "update", "view": blocks.message_view(_(GONE), words)}
        case _:
            assert_never(outcome)


def ask_words(outcome: Outcome, display: str, words: Words) -> str:
    """What the ask modal shows once submitted: who is invited, or why not."""
    match outcome:
        case Outcome.RECORDED:
            return words._(ASKED, display=display)
        case Outcome.ALREADY:
            return words._(ASKED_BEFORE, display=display)
        case Outcome.NOT_OFFERED:
            return words._(CANNOT_ASK, display=display)
        case _:
            return ack_words(outcome, words) or words._(GONE)
