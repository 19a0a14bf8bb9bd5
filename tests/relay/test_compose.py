"""SMS, WhatsApp and console wording: a property over every payload the schema accepts, and more."""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from relay import compose
from relay.delivery import Invite
from relay.model import Agent, Signal

#: what Twilio takes (21617 past it), counted in UTF-16 code units: an emoji counts two.
MAX_BODY_CHARS = 1600
#: lines that pose as the relay's own instructions, and characters that break lines or terminals.
POSING = st.sampled_from(
    [
        "\nReply ZZZZ 1 for soft-checkin.\n",
        "\r\nOr open https://evil.example/a/x\r\n",
        "\nReply ZZZZ 1 for soft-checkin. Or open https://evil.example/a/x",
        "\u2028Reply ZZZZ 2\u2029",
        "\x1b]0;pwned\x07\x1b[2J\r",
        "\u202e\x85\x0b\x0c\t\x00\x7f\x9b",
        '"',
        "🌿" * 40,
    ]
)
TEXT = st.text(max_size=80)


def adversarial(max_size: int) -> st.SearchStrategy[str]:
    """Text up to `max_size` characters made of plain text and posing lines, or one long run."""
    pieces = st.lists(TEXT | POSING, max_size=40).map("".join).map(lambda s: s[:max_size])
    return pieces | st.sampled_from(["w", "🌿", "\n"]).map(lambda c: c * max_size)


def not_blank(max_size: int) -> st.SearchStrategy[str]:
    return adversarial(max_size).filter(lambda s: s.strip() != "")


CODES = st.text(alphabet="ABCDEFGHJKLMNPQRSTUVWXYZ23456789", min_size=4, max_size=4)
BASE_URLS = st.sampled_from(["https://relay.example", "http://127.0.0.1:8080", "https://relay.example/" + "p" * 180])
TOKEN = "eyJpIjoxMjM0NTY3OH0.Z3Xq1A.abcdefghijklmnopqrstuvwxyz0123456"


@st.composite
def invites(draw: st.DrawFn) -> Invite:
    """An invitation built from any payload the schemas accept (and longer responses lists than they do)."""
    source = draw(st.sampled_from(["m3", "aisha"]))
    if source == "m3":
        signal = Signal(
            source="m3",
            event_id="evt_1",
            type=draw(st.sampled_from(["panic.ui", "status.set"])),
            ts=datetime(2026, 1, 7, tzinfo=UTC),
            subject="actor:" + draw(not_blank(200)),
            actor_display=draw(st.none() | not_blank(200)),
            whisper=draw(st.none() | adversarial(2000)),
        )
        responses = draw(st.lists(not_blank(64), min_size=1, max_size=10))
    else:
        signal = Signal(
            source="aisha",
            event_id="evt_1",
            type="care.escalation_detected",
            ts=datetime(2026, 1, 7, tzinfo=UTC),
            subject="tenant:a11dfb63-4b18-4eb8-872e-747af2e37c46",
            reason=draw(not_blank(1000)),
            reasons=tuple(draw(st.lists(not_blank(100), max_size=20))),
            confidence=draw(st.none() | st.sampled_from(["high", "medium", "low"])),
            entity_type=draw(st.sampled_from(["lead", "contact", "account", "opportunity"])),
        )
        # AISHA_SUGGESTED_RESPONSES is the operator's: as many as they like
        responses = draw(st.lists(not_blank(64), min_size=1, max_size=40))
    deep_link = None
    if source == "aisha" and draw(st.booleans()):
        deep_link = "https://aisha.example/" + draw(not_blank(1999))
    return Invite(
        invitation_id=1,
        channel="sms",
        code=draw(CODES),
        agent=Agent(id="ana", display="Ana"),
        signal=signal,
        responses=tuple(responses),
        action_url=f"{draw(BASE_URLS)}/a/{TOKEN}",
        deep_link=deep_link,
    )


def twilio_chars(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def breaks_or_steers(char: str) -> bool:
    """A character that starts a new line, or moves or recolours what a terminal shows."""
    bidi = "\u202a" <= char <= "\u202e" or "\u2066" <= char <= "\u2069"
    return bidi or unicodedata.category(char) in ("Cc", "Zl", "Zp")


@settings(max_examples=400, deadline=None)
@given(invite=invites())
def test_text_message_fits_twilio_and_ends_with_the_relays_own_instructions(invite: Invite) -> None:
    """Any payload: at most 1,600 characters, one line per part, the whisper quoted, the reply line and link last."""
    body = compose.text_message(invite)
    assert twilio_chars(body) <= MAX_BODY_CHARS
    lines = body.split("\n")
    assert not any(breaks_or_steers(c) for line in lines for c in line)
    *head, last = lines
    assert last.startswith(f"Reply {invite.code} 1") and last.endswith(f". Or open {invite.action_url}")
    assert 1 <= len(head) <= 2
    signal = invite.signal
    if signal.source == "m3":
        assert len(head) == 1
        if any(not (c.isspace() or breaks_or_steers(c)) for c in signal.whisper or ""):
            # a name of at most 60, the words between, the whisper quoted and cut at 300
            assert " sent a " in head[0] and head[0].endswith('"') and twilio_chars(head[0]) <= 60 + 24 + 302


def plain_invite(responses: tuple[str, ...], **signal: Any) -> Invite:
    """A panic.ui from actor raz, code K7QX, link https://r.example/a/t."""
    sent = Signal(
        source="m3", event_id="e", type="panic.ui", ts=datetime(2026, 1, 7, tzinfo=UTC), subject="actor:raz", **signal
    )
    return Invite(1, "sms", "K7QX", Agent(id="ana", display="Ana"), sent, responses, "https://r.example/a/t")


def test_whisper_is_cut_at_300_characters() -> None:
    """A long whisper keeps its first 299 characters and "…" (the link page shows it whole)."""
    invite = plain_invite(("soft-checkin",), actor_display="Raz", whisper="a\nb " + "w" * 400)
    headline, last = compose.text_message(invite).split("\n")
    assert headline == 'Raz sent a gentle signal: "a b ' + "w" * 295 + '…"'
    assert last == "Reply K7QX 1 for Check in gently. Or open https://r.example/a/t"  # the response's label


def test_responses_past_the_room_are_left_to_the_link() -> None:
    """Forty long responses: the first ones are listed, the rest left to the link, the link still last."""
    invite = plain_invite(tuple(f"response-{n}-" + "r" * 40 for n in range(40)))
    body = compose.text_message(invite)
    headline, last = body.split("\n")
    assert headline == "raz sent a gentle signal." and twilio_chars(body) <= MAX_BODY_CHARS
    assert last.startswith("Reply K7QX 1 for Response 0 ") and "K7QX 40" not in last  # slugs read as words
    assert last.endswith(" (more choices behind the link). Or open https://r.example/a/t")
