"""Invitation wording: soft, short, and never "urgent", "alert" or "escalation".

Pure functions of an `Invite`; every channel words its messages from here so the
tone is the same on Slack, SMS, WhatsApp and the console.
"""

from __future__ import annotations

from relay.delivery import Invite, Join, LoopSnapshot
from relay.model import Signal
from relay.text import clip, one_line, size

#: Twilio refuses a longer body (error 21617); `relay.text.size` counts as Twilio does.
MAX_TEXT_CHARS = 1600
#: the whisper's share of a text message; the link page shows it whole.
WHISPER_CHARS = 300
# Every other part a sender chooses is bounded too, so the instructions always fit.
SENDER_CHARS = 60
REASONS_CHARS = 300
RESPONSE_CHARS = 64
#: what the reply line leaves for the headline when a sender offers many long responses.
HEADLINE_ROOM = 500

#: AiSHA reason codes in plain words.
REASON_WORDS = {
    "explicit_human_request": "asked for a person",
    "negative_sentiment": "sounded unhappy",
    "repeated_contact": "reached out several times",
    "churn_risk": "may be drifting away",
    "complaint": "raised a complaint",
}


#: who an AiSHA signal is about, as the first words of an invitation.
AISHA_WHO = {"lead": "A lead", "contact": "A contact", "account": "An account", "opportunity": "A deal"}
#: what a WhatsApp template variable may hold: Meta refuses newlines, tabs and long runs of spaces,
#: and Twilio refuses an empty one (error 21656).
TEMPLATE_WORDS_CHARS = 300


def plain_reason(code: str) -> str:
    return REASON_WORDS.get(code, code.replace("_", " "))


def headline(invite: Invite, *, short: bool = False) -> str:
    """The first sentence: who sent it, and what they whispered (or why, for AiSHA).

    `short` (text messages): every sender part on one line and bounded, the whisper
    quoted and cut at `WHISPER_CHARS` (the link page shows it whole).
    """

    def part(text: str, limit: int) -> str:
        return clip(one_line(text), limit) if short else text

    signal = invite.signal
    if signal.source == "aisha":
        who = AISHA_WHO.get(signal.entity_type or "", "Someone")
        reasons = ", ".join(plain_reason(r) for r in signal.reasons) or (signal.reason or "")
        confidence = f" ({part(signal.confidence, SENDER_CHARS)} confidence)" if signal.confidence else ""
        return f"{who} could use a person: {part(reasons, REASONS_CHARS)}{confidence}."
    sender = part(signal.actor_display or signal.subject.removeprefix("actor:"), SENDER_CHARS) or "Someone"
    kind = "a gentle signal" if signal.type == "panic.ui" else "a quiet update"
    whisper = part(signal.whisper or "", WHISPER_CHARS)
    if whisper:
        return f'{sender} sent {kind}: "{whisper}"'
    return f"{sender} sent {kind}."


def clip_words(text: str, limit: int) -> str:
    """`text` within `limit` characters (as Twilio counts them), cut after a whole word with "…"."""
    if size(text) <= limit:
        return text
    cut = clip(text, limit).removesuffix("…")
    space = cut.rfind(" ")
    if space > len(cut) // 2:  # a word boundary that keeps most of it; else the cut mid-word stands
        cut = cut[:space]
    return cut.rstrip(" ,;:.-") + "…"


def template_variables(invite: Invite) -> dict[str, str]:
    """The WhatsApp template's variables, outside the 24-hour session (CONTRACT section 8).

    `{"1": sender, "2": whisper or reasons (at most 300 characters, cut on a word), "3": reply
    code, "4": action link}`: the same pieces as `headline` and `reply_line`, each on one line
    and never empty (Twilio refuses an empty variable).
    """
    signal = invite.signal
    if signal.source == "aisha":
        sender = AISHA_WHO.get(signal.entity_type or "", "Someone")
        reasons = ", ".join(plain_reason(r) for r in signal.reasons) or (signal.reason or "")
        words = one_line(reasons) or "could use a person"
    else:
        sender = one_line(signal.actor_display or signal.subject.removeprefix("actor:")) or "Someone"
        kind = "a gentle signal" if signal.type == "panic.ui" else "a quiet update"
        words = one_line(signal.whisper or "") or f"no words, just {kind}"
    return {
        "1": clip_words(sender, SENDER_CHARS),
        "2": clip_words(words, TEMPLATE_WORDS_CHARS),
        "3": invite.code,
        "4": one_line(invite.action_url),
    }


def question(invite: Invite) -> str:
    options = list(invite.responses)
    if len(options) == 1:
        return f"Would you like to {options[0]}?"
    return "Would you like to " + ", ".join(options[:-1]) + f" or {options[-1]}?"


def reply_line(invite: Invite, limit: int = MAX_TEXT_CHARS) -> str:
    """`Reply K7QX 1 for soft-checkin, K7QX 2 for hold-space.` (the code is the word after Reply).

    Each response on one line and bounded; past `limit` characters the last ones are left
    to the link (their numbers still work as replies).
    """
    labels = [clip(one_line(response), RESPONSE_CHARS) for response in invite.responses]
    parts = [f"{invite.code} {n} for {label}" if label else f"{invite.code} {n}" for n, label in enumerate(labels, 1)]
    line = "Reply " + ", ".join(parts) + "."
    while size(line) > limit and len(parts) > 1:
        parts.pop()
        line = "Reply " + ", ".join(parts) + " (more choices behind the link)."
    return line


def text_message(invite: Invite) -> str:
    """SMS, WhatsApp and console: the whole invitation in at most `MAX_TEXT_CHARS`, as Twilio counts.

    The sender's words come first, each part on one line and bounded; the relay's own
    reply line and action link always come last, so no whisper can pose as them.
    """
    link = f" Or open {invite.action_url}"
    last = reply_line(invite, MAX_TEXT_CHARS - HEADLINE_ROOM - size(link)) + link
    room = MAX_TEXT_CHARS - size(last)
    lines = [clip(headline(invite, short=True), room - 1)]
    room -= size(lines[0]) + 1
    deep_link = f"Open in AiSHA: {one_line(invite.deep_link)}" if invite.deep_link else ""
    if deep_link and size(deep_link) + 1 <= room:  # a cut link leads nowhere: whole, or left to the link page
        lines.append(deep_link)
    return "\n".join([*filter(None, lines), last])


def ack_note(display: str, action: str) -> str:
    return f"{display} is here — {action}"


def done_note(display: str, outcome: str) -> str:
    return f"{display} closed the loop — {outcome}"


def update_notes(loop: LoopSnapshot) -> list[str]:
    """A loop in words, as an updated message shows it: every ack (the closer's folded into the done), then the done."""
    done = loop.done
    notes = [ack_note(a.display, a.said) for a in loop.acks if done is None or a.agent_id != done.agent_id]
    notes += [joined_note(signal) for signal in loop.joined]
    if done is not None:
        notes.append(done_note(done.display, done.said))
    return notes or [loop.latest]


def joined_note(signal: Signal | None) -> str:
    """A later signal about the same subject, as the open loop's message shows it (CONTRACT section 10)."""
    if signal is None:
        return "Another signal arrived about this."
    if signal.source == "aisha":
        reasons = ", ".join(plain_reason(r) for r in signal.reasons) or (signal.reason or "")
        return (
            f"Another signal about this: {clip(one_line(reasons), REASONS_CHARS)}."
            if reasons
            else "Another signal about this."
        )
    sender = clip(one_line(signal.actor_display or signal.subject.removeprefix("actor:")), SENDER_CHARS) or "Someone"
    whisper = clip(one_line(signal.whisper or ""), WHISPER_CHARS)
    return f'{sender} sent another signal: "{whisper}"' if whisper else f"{sender} sent another signal."


def _circle(join: Join) -> str:
    groups = [one_line(group) for group in join.agent.groups]
    return ", ".join(groups) if groups else "a care circle"


def join_message(join: Join) -> str:
    """The one message an unconfirmed number gets (CONTRACT section 8): who added it and how to answer."""
    return (
        f"Hi {one_line(join.agent.display)} — an admin added this number to care-relay for {_circle(join)}."
        f" Reply JOIN {join.code} to receive gentle invitations here, or STOP to refuse."
    )


def join_slack_text(join: Join) -> str:
    """The Slack DM that asks an agent to confirm their Slack account (the Join button beside it)."""
    return (
        f"Hi {one_line(join.agent.display)} — an admin added you to care-relay for {_circle(join)}."
        " Press Join to receive gentle invitations here. If this is not for you, leave it: nothing is sent"
        " here until you do."
    )


def joined_text(display: str) -> str:
    """The answer to a JOIN that confirmed the address."""
    return f"Thank you, {one_line(display)} — gentle invitations can reach you here now. Reply STOP to refuse them."
