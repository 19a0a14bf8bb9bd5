"""Invitation wording: soft, short, and never "urgent", "alert" or "escalation".

Pure functions of an `Invite`; every channel words its messages from here so the
tone is the same on Slack, SMS, WhatsApp and the console.
"""

from __future__ import annotations

from relay.channels import Invite

#: AiSHA reason codes in plain words.
REASON_WORDS = {
    "explicit_human_request": "asked for a person",
    "negative_sentiment": "sounded unhappy",
    "repeated_contact": "reached out several times",
    "churn_risk": "may be drifting away",
    "complaint": "raised a complaint",
}


def plain_reason(code: str) -> str:
    return REASON_WORDS.get(code, code.replace("_", " "))


def headline(invite: Invite) -> str:
    """The first sentence: who sent it, and what they whispered (or why, for AiSHA)."""
    signal = invite.signal
    if signal.source == "aisha":
        who = {"lead": "A lead", "contact": "A contact", "account": "An account", "opportunity": "A deal"}.get(
            signal.entity_type or "", "Someone"
        )
        reasons = ", ".join(plain_reason(r) for r in signal.reasons) or (signal.reason or "")
        confidence = f" ({signal.confidence} confidence)" if signal.confidence else ""
        return f"{who} could use a person: {reasons}{confidence}."
    sender = signal.actor_display or signal.subject.removeprefix("actor:")
    kind = "a gentle signal" if signal.type == "panic.ui" else "a quiet update"
    if signal.whisper:
        return f'{sender} sent {kind}: "{signal.whisper}"'
    return f"{sender} sent {kind}."


def question(invite: Invite) -> str:
    options = list(invite.responses)
    if len(options) == 1:
        return f"Would you like to {options[0]}?"
    return "Would you like to " + ", ".join(options[:-1]) + f" or {options[-1]}?"


def reply_line(invite: Invite) -> str:
    """`Reply K7QX 1 for soft-checkin, K7QX 2 for hold-space.` (the code is the word after Reply)."""
    parts = [f"{invite.code} {n} for {response}" for n, response in enumerate(invite.responses, start=1)]
    return "Reply " + ", ".join(parts) + "."


def text_message(invite: Invite) -> str:
    """SMS, WhatsApp and console: the whole invitation as text."""
    lines = [headline(invite)]
    if invite.deep_link:
        lines.append(f"Open in AiSHA: {invite.deep_link}")
    lines.append(reply_line(invite) + f" Or open {invite.action_url}")
    return "\n".join(lines)


def ack_note(display: str, action: str) -> str:
    return f"{display} is here — {action}"


def done_note(display: str, outcome: str) -> str:
    return f"{display} closed the loop — {outcome}"
