"""Invitation wording: soft, short, and never "urgent", "alert" or "escalation".

Pure functions of an `Invite`; every channel words its messages from here so the
tone is the same on Slack, SMS, WhatsApp and the console. Every sentence is a gettext
message, said in the agent's language (`invite.words`, CONTRACT section 9); the
sender's own words (the whisper, a status, a note) are quoted as sent.

What an invitation says: who sent it and their whisper; for `status.set` the status and
note; the care window as an offer, never a deadline (left out when unlimited); for AiSHA
the reasons in plain words, the confidence, `meta.subject` and the deep link.
"""

from __future__ import annotations

from relay.delivery import Invite, Join, LoopSnapshot, care_window
from relay.labels import N_
from relay.model import Signal
from relay.text import clip, one_line, size
from relay.words import Words, english

#: Twilio refuses a longer body (error 21617); `relay.text.size` counts as Twilio does.
MAX_TEXT_CHARS = 1600
#: the whisper's share of a text message; the link page shows it whole.
WHISPER_CHARS = 300
# Every other part a sender chooses is bounded too, so the instructions always fit.
SENDER_CHARS = 60
REASONS_CHARS = 300
RESPONSE_CHARS = 64
#: a status.set's status and note, and an AiSHA subject, in a text message
CONTEXT_CHARS = 200
#: what the reply line leaves for the headline when a sender offers many long responses.
HEADLINE_ROOM = 500

#: AiSHA reason codes in plain words.
REASON_WORDS = {
    "explicit_human_request": N_("asked for a person"),
    "negative_sentiment": N_("sounded unhappy"),
    "repeated_contact": N_("reached out several times"),
    "churn_risk": N_("may be drifting away"),
    "complaint": N_("raised a complaint"),
}
#: who an AiSHA signal is about, as the first words of an invitation.
AISHA_WHO = {
    "lead": N_("A lead"),
    "contact": N_("A contact"),
    "account": N_("An account"),
    "opportunity": N_("A deal"),
}
CONFIDENCE_WORDS = {"high": N_("high confidence"), "medium": N_("medium confidence"), "low": N_("low confidence")}
#: what a WhatsApp template variable may hold: Meta refuses newlines, tabs and long runs of spaces,
#: and Twilio refuses an empty one (error 21656).
TEMPLATE_WORDS_CHARS = 300


def plain_reason(code: str, words: Words | None = None) -> str:
    words = words or english()
    return words._(REASON_WORDS[code]) if code in REASON_WORDS else code.replace("_", " ")


def _aisha_who(invite: Invite) -> str:
    who = AISHA_WHO.get(invite.signal.entity_type or "")
    return invite.words._(who) if who else invite.words._("Someone")


def sender_name(invite: Invite) -> str:
    """Who sent the signal, as the invitation names them (an AiSHA signal: what it is about)."""
    signal = invite.signal
    if signal.source == "aisha":
        return _aisha_who(invite)
    return one_line(signal.actor_display or signal.subject.removeprefix("actor:")) or invite.words._("Someone")


def _reasons(invite: Invite) -> str:
    signal = invite.signal
    return ", ".join(plain_reason(r, invite.words) for r in signal.reasons) or (signal.reason or "")


def headline(invite: Invite, *, short: bool = False) -> str:
    """The first sentence: who sent it, and what they whispered (or why, for AiSHA).

    `short` (text messages): every sender part on one line and bounded, the whisper
    quoted and cut at `WHISPER_CHARS` (the link page shows it whole).
    """

    def part(text: str, limit: int) -> str:
        return clip(one_line(text), limit) if short else text

    signal, _ = invite.signal, invite.words._
    if signal.source == "aisha":
        reasons = part(_reasons(invite), REASONS_CHARS)
        if signal.confidence:
            confidence = _(CONFIDENCE_WORDS[signal.confidence]) if signal.confidence in CONFIDENCE_WORDS else ""
            confidence = confidence or part(signal.confidence, SENDER_CHARS)
            return _(
                "{who} could use a person: {reasons} ({confidence}).",
                who=_aisha_who(invite),
                reasons=reasons,
                confidence=confidence,
            )
        return _("{who} could use a person: {reasons}.", who=_aisha_who(invite), reasons=reasons)
    sender = part(signal.actor_display or signal.subject.removeprefix("actor:"), SENDER_CHARS) or _("Someone")
    whisper = part(signal.whisper or "", WHISPER_CHARS)
    if signal.type == "panic.ui":
        if whisper:
            return _('{sender} sent a gentle signal: "{whisper}"', sender=sender, whisper=whisper)
        return _("{sender} sent a gentle signal.", sender=sender)
    if whisper:
        return _('{sender} sent a quiet update: "{whisper}"', sender=sender, whisper=whisper)
    return _("{sender} sent a quiet update.", sender=sender)


def details(invite: Invite, *, short: bool = False, window: bool = True) -> list[str]:
    """What follows the headline: a status.set's status and note, an AiSHA subject, the care window
    (an answered message leaves the window out: someone is there)."""

    def part(text: str) -> str:
        return clip(one_line(text), CONTEXT_CHARS) if short else text

    signal, _ = invite.signal, invite.words._
    lines = []
    if signal.context_status and signal.context_note:
        lines.append(
            _('Status: "{status}" — "{note}"', status=part(signal.context_status), note=part(signal.context_note))
        )
    elif signal.context_status:
        lines.append(_('Status: "{status}"', status=part(signal.context_status)))
    elif signal.context_note:
        lines.append(_('Their note: "{note}"', note=part(signal.context_note)))
    if signal.about:
        lines.append(_('About: "{subject}"', subject=part(signal.about)))
    offer = window_offer(invite) if window else ""
    if offer:
        lines.append(offer)
    return lines


def window_offer(invite: Invite) -> str:
    """The care window as an offer, never a deadline; "" when the window is unlimited."""
    minutes = care_window(invite)
    if not minutes:
        return ""
    words = invite.words
    span = words.duration(minutes)
    if invite.signal.source == "aisha":
        return words._("A person would be welcome within the next {span} — no pressure.", span=span)
    who = clip(sender_name(invite), SENDER_CHARS)
    return words._("{sender} would welcome company within the next {span} — no pressure.", sender=who, span=span)


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
    signal, _ = invite.signal, invite.words._
    if signal.source == "aisha":
        words = one_line(_reasons(invite)) or _("could use a person")
    else:
        whisper = one_line(signal.whisper or "")
        if signal.type == "panic.ui":
            words = whisper or _("no words, just a gentle signal")
        else:
            words = whisper or one_line(signal.context_status or "") or _("no words, just a quiet update")
    return {
        "1": clip_words(sender_name(invite), SENDER_CHARS),
        "2": clip_words(words, TEMPLATE_WORDS_CHARS),
        "3": invite.code,
        "4": one_line(invite.action_url),
    }


def question(invite: Invite) -> str:
    """One whole sentence, whatever the number of responses (the buttons carry the labels)."""
    _ = invite.words._
    if invite.signal.source == "aisha":
        return _("Could you be the person they need?")
    return _("How would you like to be there for {sender}?", sender=clip(sender_name(invite), SENDER_CHARS))


def label(invite: Invite, response: str) -> str:
    """A response as the agent reads it: its label in their language."""
    return invite.words.label(response)


def reply_line(invite: Invite, limit: int = MAX_TEXT_CHARS) -> str:
    """`Reply K7QX 1 for Check in gently, K7QX 2 for Hold space.` (the code is the word after Reply).

    Each response's label on one line and bounded; past `limit` characters the last ones
    are left to the link (their numbers still work as replies).
    """
    _ = invite.words._
    labels = [clip(one_line(label(invite, response)), RESPONSE_CHARS) for response in invite.responses]
    parts = [
        _("{code} {n} for {label}", code=invite.code, n=n, label=text)
        if text
        else _("{code} {n}", code=invite.code, n=n)
        for n, text in enumerate(labels, 1)
    ]
    line = _("Reply {choices}.", choices=", ".join(parts))
    while size(line) > limit and len(parts) > 1:
        parts.pop()
        line = _("Reply {choices} (more choices behind the link).", choices=", ".join(parts))
    return line


def text_message(invite: Invite) -> str:
    """SMS, WhatsApp and console: the whole invitation in at most `MAX_TEXT_CHARS`, as Twilio counts.

    The sender's words come first, each part on one line and bounded; the relay's own
    reply line and action link always come last, so no whisper can pose as them.
    """
    _ = invite.words._
    link = " " + _("Or open {url}", url=invite.action_url)
    last = reply_line(invite, MAX_TEXT_CHARS - HEADLINE_ROOM - size(link)) + link
    room = MAX_TEXT_CHARS - size(last)
    lines = [clip(headline(invite, short=True), room - 1)]
    room -= size(lines[0]) + 1
    extra = list(details(invite, short=True))
    if invite.deep_link:  # a cut link leads nowhere: whole, or left to the link page
        extra.append(_("Open in AiSHA: {link}", link=one_line(invite.deep_link)))
    for line in extra:
        if size(line) + 1 <= room:
            lines.append(line)
            room -= size(line) + 1
    return "\n".join([*filter(None, lines), last])


def ack_note(display: str, action: str, words: Words | None = None) -> str:
    """`Ana is here — Check in gently`: who answered, and the label of their response."""
    words = words or english()
    return words._("{display} is here — {label}", display=display, label=words.label(action))


def done_note(display: str, outcome: str, words: Words | None = None) -> str:
    words = words or english()
    return words._("{display} closed the loop — {label}", display=display, label=words.label(outcome))


def update_notes(loop: LoopSnapshot, words: Words | None = None) -> list[str]:
    """A loop in words, as an updated message shows it: every ack (the closer's folded into the done), then the done."""
    done = loop.done
    notes = [ack_note(a.display, a.said, words) for a in loop.acks if done is None or a.agent_id != done.agent_id]
    notes += [joined_note(signal, words) for signal in loop.joined]
    if done is not None:
        notes.append(done_note(done.display, done.said, words))
    return notes or [loop.latest]


def joined_note(signal: Signal | None, words: Words | None = None) -> str:
    """A later signal about the same subject, as the open loop's message shows it (CONTRACT section 10)."""
    _ = (words or english())._
    if signal is None:
        return _("Another signal arrived about this.")
    if signal.source == "aisha":
        reasons = ", ".join(plain_reason(r, words) for r in signal.reasons) or (signal.reason or "")
        if not reasons:
            return _("Another signal about this.")
        return _("Another signal about this: {reasons}.", reasons=clip(one_line(reasons), REASONS_CHARS))
    sender = clip(one_line(signal.actor_display or signal.subject.removeprefix("actor:")), SENDER_CHARS)
    whisper = clip(one_line(signal.whisper or ""), WHISPER_CHARS)
    if not sender:
        sender = _("Someone")
    if whisper:
        return _('{sender} sent another signal: "{whisper}"', sender=sender, whisper=whisper)
    return _("{sender} sent another signal.", sender=sender)


def _circle(join: Join) -> str:
    groups = [one_line(group) for group in join.agent.groups]
    return ", ".join(groups) if groups else join.words._("a care circle")


def join_message(join: Join) -> str:
    """The one message an unconfirmed number gets (CONTRACT section 8): who added it and how to answer."""
    return join.words._(
        "Hi {display} — an admin added this number to care-relay for {circle}."
        " Reply JOIN {code} to receive gentle invitations here, or STOP to refuse.",
        display=one_line(join.agent.display),
        circle=_circle(join),
        code=join.code,
    )


def join_slack_text(join: Join) -> str:
    """The Slack DM that asks an agent to confirm their Slack account (the Join button beside it)."""
    return join.words._(
        "Hi {display} — an admin added you to care-relay for {circle}."
        " Press Join to receive gentle invitations here. If this is not for you, leave it: nothing is sent"
        " here until you do.",
        display=one_line(join.agent.display),
        circle=_circle(join),
    )


def joined_text(display: str, words: Words | None = None) -> str:
    """The answer to a JOIN that confirmed the address."""
    return (words or english())._(
        "Thank you, {display} — gentle invitations can reach you here now. Reply STOP to refuse them.",
        display=one_line(display),
    )
