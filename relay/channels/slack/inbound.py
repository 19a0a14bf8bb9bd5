"""Slack's inbound half: presses, the close modal, "Not now", "Ask someone else" and `/care`,
through Bolt, as answers and instructions.

`POST /slack/events` (mounted by the channel registry): Slack's signature is checked over
the raw bytes, then Bolt dispatches to the listeners, through slack_bolt's aiohttp
adapter. A button's value names an invitation but is not trusted alone: `SlackAnswers`
translates the payload into a `relay.loop.Ack` or `Done` for the pressing Slack user's
agent, and `relay.answers` judges it; the `Outcome` comes back as Slack's words. What an
answer causes (the message update for everyone invited, the sender's callback) is queued
by `relay.answers` in the same transaction and sent by the outbox, not here. Listeners
ack, never raise, and log an error's type only, never care data.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Mapping
from typing import Any, assert_never

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncApp
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from relay import compose
from relay.addresses import Addresses, Confirmed
from relay.answers import Ack, Answers, Done, Outcome, Pass
from relay.bodies import read_body
from relay.channels.slack import blocks
from relay.directory import Directory
from relay.errors import (
    BadRequestError,
    InvalidSignatureError,
    MalformedSignatureHeaderError,
    MissingSignatureError,
    NotFoundError,
    TimestampOutOfWindowError,
)
from relay.instructions import Instructions
from relay.invitations import AgentRow, Held, Invitations
from relay.keys import CLOCK, SETTINGS
from relay.labels import N_
from relay.words import Words, english

__all__ = [
    "ALREADY_ACKED",
    "ALREADY_DONE",
    "BOLT",
    "GONE",
    "NOT_AN_AGENT",
    "NOT_OFFERED",
    "REFUSED",
    "TRY_AGAIN",
    "SlackAnswers",
    "handle_slack_events",
    "register",
]

log = logging.getLogger("care_relay.slack")

BOLT = web.AppKey("slack_bolt", AsyncApp)

VIA = "slack"
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
#: `/care away` and `/care back` (CONTRACT section 10): the word, and whether it sets the agent away
AWAY_WORDS = {"away": True, "back": False}
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


def _ack_words(outcome: Outcome, words: Words | None = None) -> str | None:  # noqa: PLR0911 - one per outcome
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


def _pass_words(outcome: Outcome, words: Words) -> str:
    """What the presser of "Not now" sees: thanks, or why it was not kept."""
    match outcome:
        case Outcome.RECORDED:
            return words._(PASSED)
        case Outcome.ALREADY:
            return words._(PASSED_BEFORE)
        case _:
            return _ack_words(outcome, words) or words._(GONE)


def _done_words(outcome: Outcome, words: Words | None = None) -> dict[str, Any]:
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
        return _ack_words((await self._answers.record(ack)).outcome, self._words(agent))

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
        return _ack_words(Outcome.GONE if outcome is Outcome.RECORDED else outcome, self._words(agent)), None

    async def submit_close(self, slack_user: str, view: Mapping[str, Any]) -> dict[str, Any]:
        """The modal's submission: the `ack(...)` arguments (empty closes the modal)."""
        held, agent = await self._claim(slack_user, blocks.parse_id(str(view.get("private_metadata") or "")))
        if held is None:
            await self._refuse(agent, "done")
            return _done_words(Outcome.NOT_INVITED, self._words(agent))
        values = (view.get("state") or {}).get("values") or {}
        picked = ((values.get(blocks.OUTCOME_BLOCK) or {}).get(blocks.OUTCOME_BLOCK) or {}).get("selected_option") or {}
        outcome = picked.get("value")
        note = str(((values.get(blocks.NOTE_BLOCK) or {}).get(blocks.NOTE_BLOCK) or {}).get("value") or "").strip()
        # the modal offers a fixed set of endings: anything else is no ending at all
        offered = blocks.outcome_choices(held.invite) if held.invite is not None else []
        chosen = str(outcome) if outcome in offered else ""
        done = Done(held.view.signal_id, agent.id if agent else None, chosen, note, VIA, invitation_id=held.view.id)
        return _done_words((await self._answers.record(done)).outcome, self._words(agent))

    async def press_pass(self, slack_user: str, value: str) -> str:
        """ "Not now": the ephemeral thanks, or why it was not kept. Nothing else changes."""
        held, agent = await self._claim(slack_user, blocks.parse_id(value))
        if held is None:
            await self._refuse(agent, "pass")
            return self._words(agent)._(REFUSED)
        passed = Pass(held.view.signal_id, agent.id if agent else None, VIA, invitation_id=held.view.id)
        return _pass_words((await self._answers.record(passed)).outcome, self._words(agent))

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
            return _ack_words(asking.outcome, words), None
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
        match asked.outcome:
            case Outcome.RECORDED:
                text = words._(ASKED, display=asked.display)
            case Outcome.ALREADY:
                text = words._(ASKED_BEFORE, display=asked.display)
            case Outcome.NOT_OFFERED:
                text = words._(CANNOT_ASK, display=asked.display)
            case _:
                text = _ack_words(asked.outcome, words) or words._(GONE)
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


def _field(value: Any, key: str) -> str:
    """`value[key]` as a string when `value` is an object; "" for any other shape."""
    return str(value.get(key) or "") if isinstance(value, Mapping) else ""


def _user(body: Mapping[str, Any]) -> str:
    return _field(body.get("user"), "id")


def _value(body: Mapping[str, Any]) -> str:
    actions = body.get("actions")
    return _field(actions[0], "value") if isinstance(actions, list) and actions else ""


async def _tell(client: AsyncWebClient, body: Mapping[str, Any], text: str | None) -> None:
    """An ephemeral line to the person who pressed (only they see it)."""
    channel = _field(body.get("container"), "channel_id") or _field(body.get("channel"), "id")
    if not (text and channel and _user(body)):
        return
    try:
        await client.chat_postEphemeral(channel=channel, user=_user(body), text=text)
    except Exception as exc:
        log.warning("slack ephemeral answer failed: %s", type(exc).__name__)


async def _join(flow: SlackAnswers, body: Mapping[str, Any], client: AsyncWebClient, respond: Any) -> None:
    """The Join button: the request becomes the thanks (without its button), or an ephemeral line says why not."""
    try:
        joined, text = await flow.join(_user(body), _value(body))
    except Exception as exc:
        log.warning("slack join failed: %s", type(exc).__name__)
        joined, text = False, TRY_AGAIN
    if joined:
        try:
            await respond(replace_original=True, text=text, blocks=blocks.joined_blocks(text))
            return
        except Exception as exc:
            log.warning("slack join answer failed: %s", type(exc).__name__)
    await _tell(client, body, text)


Modal = dict[str, Any]


async def _no_modal(answer: Awaitable[str | None]) -> tuple[str | None, Modal | None]:
    return await answer, None


async def _press(
    what: str, body: Mapping[str, Any], client: AsyncWebClient, answer: Awaitable[tuple[str | None, Modal | None]]
) -> None:
    """A button's answer: the modal it opens, else the ephemeral words; a failure asks to try again."""
    try:
        text, modal = await answer
        if modal is not None:
            await client.views_open(trigger_id=body.get("trigger_id"), view=modal)
    except Exception as exc:
        log.warning("slack %s failed: %s", what, type(exc).__name__)
        text = english()._(TRY_AGAIN)
    await _tell(client, body, text)


async def _submit(what: str, ack: Any, block: str, answer: Awaitable[dict[str, Any]]) -> None:
    """A modal's submission, acked with its answer; a failure shows "try again" on `block`."""
    try:
        response = await answer
    except Exception as exc:
        log.warning("slack %s failed: %s", what, type(exc).__name__)
        response = {"response_action": "errors", "errors": {block: english()._(TRY_AGAIN)}}
    await ack(**response)


def register_human_paths(bolt: AsyncApp, flow: SlackAnswers) -> None:
    """ "Not now" and "Ask someone else" (CONTRACT section 10): every listener acks, none raises."""

    @bolt.action(blocks.PASS_ACTION)
    async def handle_pass(ack: Any, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        await _press("pass", body, client, _no_modal(flow.press_pass(_user(body), _value(body))))

    @bolt.action(blocks.ASK_ACTION)
    async def handle_ask(ack: Any, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        await _press("ask", body, client, flow.press_ask(_user(body), _value(body)))

    @bolt.view(blocks.ASK_MODAL)
    async def handle_asked(ack: Any, body: dict[str, Any], view: dict[str, Any]) -> None:
        await _submit("ask submission", ack, blocks.ASK_BLOCK, flow.submit_ask(_user(body), view))


def register(bolt: AsyncApp, flow: SlackAnswers) -> None:
    """The listeners: every one acks, none raises."""
    register_human_paths(bolt, flow)

    @bolt.action(re.compile(blocks.ACK_ACTION_PATTERN))
    async def handle_ack(ack: Any, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        await _press("ack", body, client, _no_modal(flow.press_ack(_user(body), _value(body))))

    @bolt.action(blocks.DONE_ACTION)
    async def handle_close(ack: Any, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        await _press("close", body, client, flow.press_close(_user(body), _value(body)))

    @bolt.action(blocks.JOIN_ACTION)
    async def handle_join(ack: Any, body: dict[str, Any], client: AsyncWebClient, respond: Any) -> None:
        await ack()
        await _join(flow, body, client, respond)

    @bolt.action(blocks.OPEN_ACTION)
    async def handle_open(ack: Any) -> None:
        await ack()  # a link button: Slack opens the URL; nothing to record

    @bolt.view(blocks.DONE_MODAL)
    async def handle_done(ack: Any, body: dict[str, Any], view: dict[str, Any]) -> None:
        await _submit("done", ack, blocks.OUTCOME_BLOCK, flow.submit_close(_user(body), view))

    @bolt.command("/care")
    async def handle_care(ack: Any, command: dict[str, Any]) -> None:
        try:
            text = await flow.care(str(command.get("user_id") or ""), str(command.get("text") or ""))
        except Exception as exc:
            log.warning("slack /care failed: %s", type(exc).__name__)
            text = english()._(TRY_AGAIN)
        await ack(text=text, response_type="ephemeral")


#: how far X-Slack-Request-Timestamp may be from now, as Slack's own verifier allows
SLACK_WINDOW_SEC = 300
_SLACK_TS = re.compile(r"[0-9]{1,10}", re.ASCII)
_SLACK_SIG = re.compile(r"v0=[0-9a-fA-F]{64}", re.ASCII)


async def handle_slack_events(request: web.Request) -> web.Response:
    """`POST /slack/events`: Slack's signature checked over the raw bytes, then Bolt dispatches.

    The check runs here first (slack_sdk's verifier; Bolt checks again) so that nothing
    unsigned is parsed: garbled headers, bodies and charsets get the contract's 4xx, not
    Bolt's 500 or its own error shapes.
    """
    settings = request.app[SETTINGS]
    body = await read_body(request, settings.relay_max_body_bytes)
    timestamp = request.headers.get("X-Slack-Request-Timestamp", "")
    signature = request.headers.get("X-Slack-Signature", "")
    if not timestamp or not signature:
        raise MissingSignatureError("Slack requests carry X-Slack-Request-Timestamp and X-Slack-Signature.")
    if not _SLACK_TS.fullmatch(timestamp) or not _SLACK_SIG.fullmatch(signature):
        raise MalformedSignatureHeaderError("X-Slack-Request-Timestamp or X-Slack-Signature is not in Slack's form.")
    skew = abs(request.app[CLOCK]() - int(timestamp))
    if skew > SLACK_WINDOW_SEC:
        raise TimestampOutOfWindowError(
            f"X-Slack-Request-Timestamp is {int(skew)} s off the relay's clock (Slack allows 300 s)."
        )
    secret = settings.slack_signing_secret
    if not secret:  # never reached (the route is mounted with a secret); an empty one must not verify
        raise InvalidSignatureError("This relay has no Slack signing secret.")
    try:
        valid = SignatureVerifier(secret).is_valid(body, timestamp, signature)
    except UnicodeDecodeError:  # the verifier reads the body as UTF-8, as Slack sends it
        raise BadRequestError("The body is not UTF-8 text; this is not a request Slack sends.") from None
    if not valid:
        raise InvalidSignatureError("X-Slack-Signature does not match this app's signing secret.")
    unreadable = BadRequestError("This is not a request Slack sends: the body or its charset cannot be read.")
    try:
        # the body read above, decoded by its charset and parsed (form, `payload` JSON) by Bolt
        bolt_request = await to_bolt_request(request)
        answer = await request.app[BOLT].async_dispatch(bolt_request)
    except (ValueError, TypeError, AttributeError, LookupError) as exc:  # UnicodeDecodeError is a ValueError
        log.warning("slack request not readable: %s", type(exc).__name__)
        raise unreadable from None
    if answer.status == 404:
        raise NotFoundError("This relay does not handle that kind of Slack request.")
    if answer.status >= 500:
        log.warning("slack request answered %d by the dispatcher", answer.status)
        raise unreadable
    return await to_aiohttp_response(answer)
