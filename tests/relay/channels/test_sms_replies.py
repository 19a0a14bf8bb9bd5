"""The SMS / WhatsApp reply grammar, pure: parse, then resolve against the agent's open invitations."""

from __future__ import annotations

import pytest

from inbox import reply_codes
from relay.channels.twilio import replies
from relay.channels.twilio.replies import (
    Ack,
    Done,
    ListOpen,
    OpenInvite,
    Problem,
    Remind,
    ShowMenu,
    TwilioKeyword,
    parse,
    resolve,
)
from relay.text import size
from relay.words import Lexicon

K7QX = OpenInvite("K7QX", ("soft-checkin", "hold-space"))
M2PA = OpenInvite("M2PA", ("on-it",))
ONE = (K7QX,)
TWO = (K7QX, M2PA)

CASES = [
    # text, open invitations, reading
    ("K7QX 1", ONE, Ack("K7QX", "soft-checkin")),
    ("k7qx 2", TWO, Ack("K7QX", "hold-space")),
    ("  K7qx    1  ", ONE, Ack("K7QX", "soft-checkin")),
    ("K7QX hold-space", ONE, Ack("K7QX", "hold-space")),
    ("K7QX Hold Space", ONE, Ack("K7QX", "hold-space")),
    ("k7qx HOLD_SPACE!", ONE, Ack("K7QX", "hold-space")),
    ("M2PA 1", TWO, Ack("M2PA", "on-it")),
    ("1", ONE, Ack("K7QX", "soft-checkin")),
    ("soft-checkin", ONE, Ack("K7QX", "soft-checkin")),
    ("Soft-Checkin.", ONE, Ack("K7QX", "soft-checkin")),
    ("K7QX 3", ONE, Problem("bad_choice", "K7QX")),
    ("K7QX 0", ONE, Problem("bad_choice", "K7QX")),
    ("K7QX ²", ONE, Problem("bad_choice", "K7QX")),
    ("K7QX dance", ONE, Problem("bad_choice", "K7QX")),
    ("7", ONE, Problem("bad_choice", "K7QX")),
    ("hello there", ONE, Problem("bad_choice", "K7QX")),
    ("1", TWO, Problem("need_code")),
    ("soft-checkin", TWO, Problem("need_code")),
    ("1", (), Problem("no_open")),
    ("ZZ99 1", ONE, Problem("unknown_code", typed="ZZ99")),
    ("zz99 1", TWO, Problem("unknown_code", typed="ZZ99")),
    ("K7QX 1", (), Problem("unknown_code", typed="K7QX")),
    ("CALM", ONE, Problem("unknown_code", typed="CALM")),
    ("K7QX", TWO, Remind("K7QX")),
    ("k7qx", ONE, Remind("K7QX")),
    # DONE [CODE] [outcome | n] [: note]
    ("DONE K7QX held-space: all calm", TWO, Done("K7QX", "held-space", "all calm")),
    ("done k7qx Held Space : All calm: really.", TWO, Done("K7QX", "held-space", "All calm: really.")),
    ("DONE K7QX", TWO, Done("K7QX", "done", "")),
    ("DONE K7QX: short call", ONE, Done("K7QX", "done", "short call")),
    ("DONE", ONE, Done("K7QX", "done", "")),
    ("Done.", ONE, Done("K7QX", "done", "")),
    ("DONE held-space: all calm", ONE, Done("K7QX", "held-space", "all calm")),
    ("done: all calm", ONE, Done("K7QX", "done", "all calm")),
    ("DONE calm", ONE, Done("K7QX", "calm", "")),
    ("DONE K7QX 2", ONE, Done("K7QX", "hold-space", "")),
    ("DONE K7QX 9", ONE, Problem("bad_choice", "K7QX")),
    ("DONE", TWO, Problem("need_code")),
    ("DONE held-space: calm", TWO, Problem("need_code")),
    ("DONE ZZ99 held-space", ONE, Problem("unknown_code", typed="ZZ99")),
    ("DONE CALM", ONE, Problem("unknown_code", typed="CALM")),
    ("DONE", (), Problem("no_open")),
    # LIST, MENU: whole message, any case
    ("LIST", TWO, ListOpen()),
    (" list ", (), ListOpen()),
    ("Menu", ONE, ShowMenu()),
    ("menu.", ONE, ShowMenu()),
    # Twilio's keywords: the whole message, as Twilio matches them; never ours
    ("STOP", ONE, TwilioKeyword("opt_out")),
    ("stop", ONE, TwilioKeyword("opt_out")),
    (" Unsubscribe ", ONE, TwilioKeyword("opt_out")),
    ("STOPALL", ONE, TwilioKeyword("opt_out")),
    ("start", ONE, TwilioKeyword("opt_in")),
    ("UNSTOP", ONE, TwilioKeyword("opt_in")),
    ("yes", ONE, TwilioKeyword("opt_in")),
    ("HELP", ONE, TwilioKeyword("help")),
    ("info", ONE, TwilioKeyword("help")),
    ("stop please", TWO, Problem("need_code")),
    # nothing to read
    ("", ONE, Problem("not_understood")),
    ("   ", ONE, Problem("not_understood")),
    (" . ", TWO, Problem("not_understood")),
]


@pytest.mark.parametrize(("text", "opens", "reading"), CASES, ids=[f"{c[0]!r}/{len(c[1])}" for c in CASES])
def test_reply_grammar(text: str, opens: tuple[OpenInvite, ...], reading: object) -> None:
    """Each reply reads as the contract's grammar says, given the agent's open invitations."""
    assert resolve(parse(text), opens) == reading


@pytest.mark.parametrize(
    ("word", "code_like"),
    [
        ("K7QX", True),
        ("k7qx", True),
        ("CALM", True),
        ("calm", False),
        ("Calm", False),
        ("K7Q", False),
        ("K7QXX", False),
        ("K0QX", False),
        ("KIQX", False),
        ("2345", True),
    ],
)
def test_what_counts_as_a_code(word: str, code_like: bool) -> None:
    """A code is 4 characters of the code alphabet, typed in capitals or holding a digit."""
    assert replies.looks_like_code(word) is code_like


def test_code_alphabet_matches_the_store() -> None:
    """The grammar's alphabet is the one codes are drawn from."""
    assert replies.CODE_ALPHABET == reply_codes.CODE_ALPHABET


def test_outcome_and_note_are_bounded() -> None:
    """A DONE outcome fits done.outcome (100) and a note is cut at 1000 characters."""
    reading = resolve(parse("DONE K7QX " + "x" * 300 + ": " + "n" * 5000), ONE)
    assert isinstance(reading, Done)
    assert len(reading.outcome) == replies.MAX_OUTCOME and len(reading.note) == replies.MAX_NOTE


@pytest.mark.parametrize("locale", ["en", "ro"])
@pytest.mark.parametrize("count", [1, 2, 5, 6, 40])
def test_a_list_is_one_message_and_counts_the_invitations_it_leaves_out(locale: str, count: int) -> None:
    """However long the names and labels (a line break in them too), LIST fits Twilio's 1,600 characters, lists
    the invitations in the order given, each on one line, and its last line counts those left out."""
    words = Lexicon().words(locale)
    labels = tuple(("Stay close and listen 🌙\n" * 5)[:200] + f" {n}" for n in range(10))
    items = [
        (OpenInvite(f"K{n:03d}", tuple(f"r{i}" for i in range(10)), labels), "A very long\nname 💛 " * 30)
        for n in range(count)
    ]
    text = replies.listing_text(items, words=words)
    assert size(text) <= 1600, size(text)
    lines = text.splitlines()
    listed = [line for line in lines[1:] if line.startswith("K")]
    assert listed and [line[:4] for line in listed] == [f"K{n:03d}" for n in range(len(listed))]
    left = count - len(listed)
    assert (lines[-1] == words._("…and {count} more.", count=left)) if left else lines[-1] == listed[-1]
    assert len(lines) == 1 + len(listed) + (1 if left else 0)


def test_our_words_are_never_twilio_keywords() -> None:
    """LIST, MENU and DONE are not among Twilio's own keywords, and those never read as ours."""
    ours = {"LIST", "MENU", "DONE"}
    theirs = replies.OPT_OUT_WORDS | replies.OPT_IN_WORDS | replies.HELP_WORDS
    assert not ours & theirs
    assert {"HELP", "STOP", "START", "INFO", "YES"} <= theirs
    for word in theirs:
        assert isinstance(parse(word.lower()), TwilioKeyword)


def test_answers_are_short_and_name_the_way_to_answer() -> None:
    """Menu, list and problem answers fit one SMS segment or two, and say how to answer."""
    menu = replies.menu_text("K7QX")
    assert '"K7QX 1"' in menu and "DONE K7QX" in menu and "LIST" in menu and len(menu) <= 320
    listing = replies.listing_text([(K7QX, "Raz"), (M2PA, "a contact")])
    assert listing == "Open invitations:\nK7QX — Raz: 1 soft-checkin, 2 hold-space\nM2PA — a contact: 1 on-it"
    assert replies.listing_text([]) == "You have no open invitations right now."
    need = replies.problem_text(Problem("need_code"), TWO)
    assert "K7QX, M2PA" in need and '"K7QX 1"' in need
    bad = replies.problem_text(Problem("bad_choice", "K7QX"), TWO)
    assert bad == 'For K7QX you can answer 1 soft-checkin, 2 hold-space — e.g. "K7QX 1".'
    unknown = replies.problem_text(Problem("unknown_code", typed="ZZ99"), ONE)
    assert unknown.startswith("I don't have an open invitation ZZ99 for you.") and '"K7QX 1"' in unknown
    assert replies.thanks("Ana", "recorded: soft-checkin") == "Thank you, Ana — recorded: soft-checkin."
    for text in (menu, listing, need, bad, unknown):
        assert not any(word in text.lower() for word in ("urgent", "alert", "escalation", "help", "stop"))
