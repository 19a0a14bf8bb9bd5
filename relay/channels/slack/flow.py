"""Slack's payloads as answers and instructions, and each answer's outcome in Slack's words.

Presses, the close and ask modals, and `/care`. A button's value names an invitation but is
not trusted alone: `SlackAnswers` translates the payload into a `relay.loop.Ack`, `Done` or
`Pass` for the pressing Slack user's agent (or the agent's instruction: "Ask someone else",
`/care away`), and `relay.answers` judges it; the `Outcome` comes back as the words below,
in the agent's language. Each outcome->words map is checked complete (`match` with
`assert_never` where every outcome has its own words). What an answer causes (the message
update for everyone invited, the sender's callback) is queued by `relay.answers` in the
same transaction and sent by the outbox, not here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, assert_never

from relay import compose
from relay.addresses import Addresses, Confirmed
from relay.answers import Ack, Answers, Done, Outcome, Pass
from relay.channels.slack import blocks
from relay.directory import Directory
from relay.instructions import Instructions
from relay.invitations import AgentRow, Held, Invitations
from relay.labels import N_
from relay.words import Words, english

__all__ = [
    "ACKED_NO_PASS",
    "ALREADY_ACKED",
    "ALREADY_DONE",
    "ASKED",
    "ASKED_BEFORE",
    "AWAY_TEXT",
    "AWAY_WORDS",
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
    "VIA",
    "SlackAnswers",
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


VIA = "slack"
#: `/care away` and `/care back` (CONTRACT section 10): the word, and whether it sets the agent away
AWAY_WORDS = {"away": True, "back": False}


class SlackAnswers:
    """Button presses, the close modal and `/care`: Slack's payloads as `Ack` / `Done`, outcomes as words."""

    def __init__(
        self,
        answers: Answers,
        invitations: Invitations,
        addresses: Addresses | None = None,
        directory: Directory | None = None,
        instructions: Instructions | None = None,
    ) -> None:
        self._answers = answers
        #: "Ask someone else" (CONTRACT section 10) is the agent's instruction
        self._instructions = instructions
        self._invitations = invitations
        self._addresses = addresses
        #: `/care away` and `/care back` (CONTRACT section 10) change the directory
        self._directory = directory

    async def join(self, slack_user: str, code: str) -> tuple[bool, str]:
        """The Join button: (confirmed, the words) for the Slack user who pressed it."""
        agent = await self._invitations.claimant(VIA, slack_user)
        words = self._words(agent)
        if agent is None or not agent.active or self._addresses is None:
            return False, words._(NOT_AN_AGENT)
        result = await self._addresses.confirm(agent.id, VIA, code)
        if result is Confirmed.CONFIRMED:
            return True, compose.joined_text(agent.display, words)
        return False, words._(JOINED_BEFORE if result is Confirmed.ALREADY else JOIN_STALE)

    async def _claim(self, slack_user: str, invitation_id: int | None) -> tuple[Held | None, AgentRow | None]:
        """The invitation, and the agent behind `slack_user`.

        The invitation's own agent is matched first: the directory does not make
        slack_user unique, and a shared id must not hide the invitation's holder.
        """
        held = await self._invitations.held(invitation_id) if invitation_id is not None else None
        holder = held.holder if held is not None else None
        if holder is not None and slack_user and holder.slack_user == slack_user:
            # an unconfirmed Slack account is nobody's yet: it answers nothing
            return held, holder if self._invitations.confirmed(holder, VIA) else None
        return held, await self._invitations.agent_at(VIA, slack_user)

    def _words(self, agent: AgentRow | None) -> Words:
        """The presser's language (RELAY_DEFAULT_LOCALE for a stranger)."""
        return self._invitations.lexicon.words(agent.locale if agent is not None else None)

    async def _refuse(self, agent: AgentRow | None, what: str) -> None:
        """A payload that names no invitation: refused before any loop can judge it."""
        who = "an agent no longer active" if agent is not None and not agent.active else "someone not invited"
        await self._answers.refuse(
            signal_id=None, agent_id=agent.id if agent else None, via=VIA, reason=f"slack {what} by {who}"
        )

    async def press_ack(self, slack_user: str, value: str) -> str | None:
        """A response button: the ephemeral text to show, or None when the ack is recorded."""
        parsed = blocks.parse_ack_value(value)
        held, agent = await self._claim(slack_user, parsed[0] if parsed else None)
        if parsed is None or held is None:
            await self._refuse(agent, "ack")
            return self._words(agent)._(REFUSED)
        responses = held.invite.responses if held.invite is not None else ()
        response = responses[parsed[1] - 1] if 1 <= parsed[1] <= len(responses) else ""
        ack = Ack(held.view.signal_id, agent.id if agent else None, response, VIA, invitation_id=held.view.id)
        return ack_words((await self._answers.record(ack)).outcome, self._words(agent))

    async def press_close(self, slack_user: str, value: str) -> tuple[str | None, dict[str, Any] | None]:
        """The "Close the loop" button: (ephemeral text, None) or (None, the modal to open)."""
        held, agent = await self._claim(slack_user, blocks.parse_id(value))
        if held is None:
            await self._refuse(agent, "close")
            return self._words(agent)._(REFUSED), None
        outcome = await self._answers.admit(
            signal_id=held.view.signal_id,
            agent_id=agent.id if agent else None,
            invitation_id=held.view.id,
            via=VIA,
            what="slack close",
        )
        if outcome is Outcome.RECORDED and held.invite is not None:
            return None, blocks.done_modal(held.invite)
        return ack_words(Outcome.GONE if outcome is Outcome.RECORDED else outcome, self._words(agent)), None

    async def submit_close(self, slack_user: str, view: Mapping[str, Any]) -> dict[str, Any]:
        """The modal's submission: the `ack(...)` arguments (empty closes the modal)."""
        held, agent = await self._claim(slack_user, blocks.parse_id(str(view.get("private_metadata") or "")))
        if held is None:
            await self._refuse(agent, "done")
            return done_words(Outcome.NOT_INVITED, self._words(agent))
        values = (view.get("state") or {}).get("values") or {}
        picked = ((values.get(blocks.OUTCOME_BLOCK) or {}).get(blocks.OUTCOME_BLOCK) or {}).get("selected_option") or {}
        outcome = picked.get("value")
        note = str(((values.get(blocks.NOTE_BLOCK) or {}).get(blocks.NOTE_BLOCK) or {}).get("value") or "").strip()
        # the modal offers a fixed set of endings: anything else is no ending at all
        offered = blocks.outcome_choices(held.invite) if held.invite is not None else []
        chosen = str(outcome) if outcome in offered else ""
        done = Done(held.view.signal_id, agent.id if agent else None, chosen, note, VIA, invitation_id=held.view.id)
        return done_words((await self._answers.record(done)).outcome, self._words(agent))

    async def press_pass(self, slack_user: str, value: str) -> str:
        """ "Not now": the ephemeral thanks, or why it was not kept. Nothing else changes."""
        held, agent = await self._claim(slack_user, blocks.parse_id(value))
        if held is None:
            await self._refuse(agent, "pass")
            return self._words(agent)._(REFUSED)
        passed = Pass(held.view.signal_id, agent.id if agent else None, VIA, invitation_id=held.view.id)
        return pass_words((await self._answers.record(passed)).outcome, self._words(agent))

    async def press_ask(self, slack_user: str, value: str) -> tuple[str | None, dict[str, Any] | None]:
        """ "Ask someone else": (ephemeral text, None) or (None, the modal of the agents to ask)."""
        held, agent = await self._claim(slack_user, blocks.parse_id(value))
        words = self._words(agent)
        if held is None or agent is None or self._instructions is None:
            await self._refuse(agent, "ask someone else")
            return words._(REFUSED), None
        asking = await self._instructions.askable(
            signal_id=held.view.signal_id, agent_id=agent.id, invitation_id=held.view.id
        )
        if asking.outcome is not Outcome.RECORDED:
            return ack_words(asking.outcome, words), None
        if not asking.names or held.invite is None:
            return words._(NOBODY_TO_ASK), None
        return None, blocks.ask_modal(held.invite, asking.names)

    async def submit_ask(self, slack_user: str, view: Mapping[str, Any]) -> dict[str, Any]:
        """The ask modal's submission: the agent picked, invited as this agent's instruction."""
        held, agent = await self._claim(slack_user, blocks.parse_id(str(view.get("private_metadata") or "")))
        words = self._words(agent)
        title = words._("Ask someone else")
        if held is None or agent is None or self._instructions is None:
            await self._refuse(agent, "ask someone else")
            return {"response_action": "update", "view": blocks.message_view(words._(REFUSED), words, title)}
        values = (view.get("state") or {}).get("values") or {}
        picked = ((values.get(blocks.ASK_BLOCK) or {}).get(blocks.ASK_BLOCK) or {}).get("selected_option") or {}
        target = str(picked.get("value") or "")
        if not target:
            return {"response_action": "errors", "errors": {blocks.ASK_BLOCK: words._("Pick someone to ask.")}}
        asked = await self._instructions.ask(
            signal_id=held.view.signal_id, agent_id=agent.id, invitation_id=held.view.id, target=target, via=VIA
        )
        text = ask_words(asked.outcome, asked.display, words)
        return {"response_action": "update", "view": blocks.message_view(text, words, title)}

    async def list_open(self, slack_user: str) -> str:
        """`/care`: this agent's own open invitations, nobody else's."""
        agent = await self._invitations.agent_at(VIA, slack_user)
        if agent is None or not agent.active:
            return self._words(None)._(NOT_AN_AGENT)
        opens = await self._invitations.open_for(agent)
        return blocks.open_list([(invite, view.loop_status) for view, invite in opens], self._words(agent))

    async def care(self, slack_user: str, text: str) -> str:
        """`/care` lists the agent's open invitations; `/care away` and `/care back` set them away or back."""
        word = text.strip().lower()
        if word not in AWAY_WORDS or self._directory is None:
            return await self.list_open(slack_user)
        agent = await self._invitations.agent_at(VIA, slack_user)
        if agent is None or not agent.active:
            return self._words(None)._(NOT_AN_AGENT)
        away = AWAY_WORDS[word]
        await self._directory.set_away(agent.id, away, instruction=f"{agent.id} said /care {word} in slack", via=VIA)
        return self._words(agent)._(AWAY_TEXT if away else BACK_TEXT)
