"""Block Kit for the Slack channel: the invitation DM, its answered form, the close modal.

Pure functions of an `Invite` (wording from `relay.compose`), so the shapes are easy to
read and to test. Care text (a whisper, a headline) always goes into `plain_text`
objects: a whisper can never turn into a mention, a link or formatting. Where Slack
only takes mrkdwn (a message's top-level `text`), `&`, `<` and `>` are escaped.

Slack's limits that shape this module: button text 75 characters, button value 2000,
section text 3000, 25 elements in an actions block, 10 in a context block, modal
title 24 characters, 100 options in a static_select (text 75, value 150).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from relay import compose, loop
from relay.delivery import Invite, Join
from relay.text import clip
from relay.words import Words, english

#: a suggested response's button: `care_ack_<n>` (1-based n, unique within the block).
ACK_ACTION = "care_ack"
ACK_ACTION_PATTERN = r"^care_ack(_[0-9]+)?$"
DONE_ACTION = "care_done"
#: "Not now" (CONTRACT section 10): the agent passes on this invitation.
PASS_ACTION = "care_pass"  # noqa: S105 - an action id, not a password
#: "Ask someone else": opens the modal of the agents this agent may invite.
ASK_ACTION = "care_ask"
ASK_MODAL = "care_ask_modal"
ASK_BLOCK = "ask_agent"
#: the AiSHA deep link: a link button, which Slack still reports (acked, nothing else).
OPEN_ACTION = "care_open"
DONE_MODAL = "care_done_modal"
OUTCOME_BLOCK = "outcome"
NOTE_BLOCK = "note"
#: ways a loop can end, offered in the close modal before the loop's own responses.
OUTCOMES = ("held-space", "talked", "checked-in", "no-answer-needed")
#: the modal's note field holds what every channel takes (relay.loop.NOTE_MAX).
NOTE_MAX = loop.NOTE_MAX

Block = dict[str, Any]


def escape(text: str) -> str:
    """mrkdwn's three control characters, so text never becomes a mention or a link."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def plain(text: str, limit: int = 3000) -> dict[str, Any]:
    return {"type": "plain_text", "text": clip(text, limit), "emoji": True}


def ack_value(invitation_id: int, n: int) -> str:
    """A response button's value: "<invitation id>:<1-based response number>"."""
    return f"{invitation_id}:{n}"


def parse_ack_value(value: str) -> tuple[int, int] | None:
    head, sep, tail = value.partition(":")
    if not sep or not head.isdigit() or not tail.isdigit():
        return None
    return int(head), int(tail)


def parse_id(value: str) -> int | None:
    value = value.strip()
    return int(value) if value.isdigit() else None


def _section(block_id: str, text: str) -> Block:
    return {"type": "section", "block_id": block_id, "text": plain(text)}


def _close_button(invite: Invite) -> Block:
    return {
        "type": "button",
        "action_id": DONE_ACTION,
        "text": plain(invite.words._("Close the loop"), 75),
        "value": str(invite.invitation_id),
    }


def _pass_button(invite: Invite) -> Block:
    return {
        "type": "button",
        "action_id": PASS_ACTION,
        "text": plain(invite.words._("Not now"), 75),
        "value": str(invite.invitation_id),
    }


def _ask_button(invite: Invite) -> Block:
    return {
        "type": "button",
        "action_id": ASK_ACTION,
        "text": plain(invite.words._("Ask someone else"), 75),
        "value": str(invite.invitation_id),
    }


def _link_button(invite: Invite) -> list[Block]:
    if not invite.deep_link:
        return []
    return [
        {
            "type": "button",
            "action_id": OPEN_ACTION,
            "text": plain(invite.words._("Open in AiSHA"), 75),
            "url": invite.deep_link,
        }
    ]


def invitation_text(invite: Invite) -> str:
    """The message's top-level text: what a notification shows."""
    return escape(compose.headline(invite))


def invitation_blocks(invite: Invite) -> list[Block]:
    """Who sent it and the whisper (and what else the sender said), the question, one button per response
    with its label, "Close the loop", "Not now" and "Ask someone else"."""
    responses = invite.responses[:21]  # 25 elements at most, with close, pass, ask and link
    buttons: list[Block] = [
        {
            "type": "button",
            "action_id": f"{ACK_ACTION}_{n}",
            "text": plain(compose.label(invite, response), 75),
            "value": ack_value(invite.invitation_id, n),
            **({"style": "primary"} if n == 1 else {}),
        }
        for n, response in enumerate(responses, start=1)
    ]
    blocks = [_section("care_headline", compose.headline(invite))]
    details = compose.details(invite)
    if details:
        blocks.append({"type": "context", "block_id": "care_details", "elements": [plain(d) for d in details[:10]]})
    if responses:
        blocks.append(_section("care_question", compose.question(invite)))
    elements = [*buttons, _close_button(invite), _pass_button(invite), _ask_button(invite), *_link_button(invite)]
    blocks.append({"type": "actions", "block_id": "care_answers", "elements": elements})
    return blocks


def answered_text(invite: Invite, notes: Sequence[str]) -> str:
    return escape("\n".join([compose.headline(invite), *notes[-1:]]))


def answered_blocks(invite: Invite, notes: Sequence[str], *, done: bool) -> list[Block]:
    """The headline kept, the answers as a context line; "Close the loop" and "Ask someone else" stay until done."""
    blocks = [_section("care_headline", compose.headline(invite))]
    details = compose.details(invite, window=False)
    if details:
        blocks.append({"type": "context", "block_id": "care_details", "elements": [plain(d) for d in details[:10]]})
    if notes:
        blocks.append({"type": "context", "block_id": "care_notes", "elements": [plain(n) for n in notes[-10:]]})
    elements = ([] if done else [_close_button(invite), _ask_button(invite)]) + _link_button(invite)
    if elements:
        blocks.append({"type": "actions", "block_id": "care_answers", "elements": elements})
    return blocks


def waiting_blocks(invite: Invite, notes: Sequence[str]) -> list[Block]:
    """The invitation as sent, its response buttons kept, with notes above the buttons: a loop
    nobody answered yet that a later signal joined (CONTRACT section 10)."""
    sent = invitation_blocks(invite)
    context = {"type": "context", "block_id": "care_notes", "elements": [plain(n) for n in notes[-10:]]}
    return [*sent[:-1], context, sent[-1]] if notes else sent


def outcome_choices(invite: Invite) -> list[str]:
    """The close modal's options: the usual endings, then this loop's own responses."""
    seen: list[str] = []
    for option in (*OUTCOMES, *invite.responses):
        if option and option not in seen and len(option) <= 150:
            seen.append(option)
    return seen[:100]


def _modal(invite: Invite, callback_id: str, title: str, submit: str, *inputs: Block) -> dict[str, Any]:
    """A modal about one invitation: its headline, then `inputs`; "Not yet" closes it."""
    _ = invite.words._
    return {
        "type": "modal",
        "callback_id": callback_id,
        "private_metadata": str(invite.invitation_id),
        "title": plain(title, 24),
        "submit": plain(submit, 24),
        "close": plain(_("Not yet"), 24),
        "blocks": [_section("care_headline", compose.headline(invite)), *inputs],
    }


def done_modal(invite: Invite) -> dict[str, Any]:
    """The "Close the loop" modal: an outcome (required) and a note (optional)."""
    _ = invite.words._
    options = [{"text": plain(compose.label(invite, o), 75), "value": o} for o in outcome_choices(invite)]
    return _modal(
        invite,
        DONE_MODAL,
        _("Close the loop"),
        _("Close it"),
        {
            "type": "input",
            "block_id": OUTCOME_BLOCK,
            "label": plain(_("How did it end?"), 2000),
            "element": {"type": "static_select", "action_id": OUTCOME_BLOCK, "options": options},
        },
        {
            "type": "input",
            "block_id": NOTE_BLOCK,
            "optional": True,
            "label": plain(_("A note for the sender (optional)"), 2000),
            "element": {"type": "plain_text_input", "action_id": NOTE_BLOCK, "multiline": True, "max_length": NOTE_MAX},
        },
    )


def ask_modal(invite: Invite, names: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """The "Ask someone else" modal: one of the agents this agent may invite (id, display)."""
    _ = invite.words._
    options = [
        {"text": plain(display, 75), "value": agent_id} for agent_id, display in names[:100] if len(agent_id) <= 150
    ]
    return _modal(
        invite,
        ASK_MODAL,
        _("Ask someone else"),
        _("Invite"),
        {
            "type": "input",
            "block_id": ASK_BLOCK,
            "label": plain(_("Who could be there instead, or as well?"), 2000),
            "element": {"type": "static_select", "action_id": ASK_BLOCK, "options": options},
        },
    )


def message_view(text: str, words: Words | None = None, title: str | None = None) -> dict[str, Any]:
    """A modal that only says something (it replaces the form after a submission)."""
    _ = (words or english())._
    return {
        "type": "modal",
        "title": plain(title or _("Close the loop"), 24),
        "close": plain(_("OK"), 24),
        "blocks": [_section("care_message", text)],
    }


def when(ts: datetime) -> str:
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return ts.astimezone(UTC).strftime("%d %b %H:%M UTC").lstrip("0")


def open_list(items: Sequence[tuple[Invite, str]], words: Words | None = None) -> str:
    """`/care`: the agent's own open invitations, one line each (mrkdwn-escaped)."""
    _ = (words or english())._
    if not items:
        return _("Nothing is waiting for you right now.")
    lines = [_("Your open invitations:")]
    for invite, loop_status in items[:20]:
        state = _("someone is there") if loop_status == "acked" else _("waiting for someone")
        moment = when(invite.signal.ts) if invite.words.locale == "en" else invite.words.moment(invite.signal.ts, None)
        lines.append(f"• {escape(clip(compose.headline(invite), 300))} ({moment}, {state})")
    if len(items) > 20:
        lines.append(_("…and {count} more.", count=len(items) - 20))
    return "\n".join(lines)


#: the Join button's action id (CONTRACT section 8)
JOIN_ACTION = "join_address"


def join_blocks(join: Join) -> list[dict[str, Any]]:
    """The DM that asks an agent to confirm their Slack account: the words and one Join button."""
    return [
        {"type": "section", "text": plain(compose.join_slack_text(join))},
        {
            "type": "actions",
            "block_id": "join",
            "elements": [
                {
                    "type": "button",
                    "action_id": JOIN_ACTION,
                    "text": plain(join.words._("Join")),
                    "style": "primary",
                    "value": join.code,
                }
            ],
        },
    ]


def joined_blocks(thanks: str) -> list[dict[str, Any]]:
    """The join DM once the button was pressed: the thanks, no button."""
    return [{"type": "section", "text": plain(thanks)}]
