"""What people read (CONTRACT section 9): complete catalogs, Romanian everywhere a Romanian agent reads, labels."""

from __future__ import annotations

import io
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from relay import compose
from relay.channels.slack import blocks
from relay.channels.twilio import replies
from relay.config import ConfigError, load
from relay.delivery import Invite, Join, LoopSnapshot, Note
from relay.labels import BUILT_IN, LOCALES, ResponsesFileError, as_words, parse_responses, read_responses
from relay.model import Agent, Signal
from relay.words import Lexicon, catalog_path
from tests.support import clean_env

ROOT = Path(__file__).resolve().parents[2]
KEYWORDS = {"_": None, "n_": (1, 2), "N_": None}
METHODS = [("**.py", "python"), ("web/templates/**.html", "jinja2")]
PLACEHOLDER = re.compile(r"\{(\w+)\}")
LEXICON = Lexicon()


@contextmanager
def clean_env_vars(**values: str) -> Iterator[None]:
    """No relay setting in the environment but `values`; restored after."""
    with mock.patch.dict(os.environ, clean_env(**values), clear=True):
        yield


def extracted() -> dict[str, str | tuple[str, str]]:
    """Every message id in the relay's code and templates, as `make messages` extracts them."""
    found: dict[str, str | tuple[str, str]] = {}
    options = {"web/templates/**.html": {"trim_blocks": "True", "lstrip_blocks": "True"}}
    for _file, _line, message, _comments, _context in extract_from_dir(
        str(ROOT / "relay"), METHODS, options_map=options, keywords=KEYWORDS
    ):
        key = message[0] if isinstance(message, tuple) else message
        found[key] = message
    return found


def catalog(locale: str) -> Any:
    with (ROOT / "relay" / catalog_path(locale)).open("rb") as po:
        return read_po(po, locale=locale)


@pytest.mark.parametrize("locale", LOCALES)
def test_every_message_has_a_translation_in_every_catalog(locale: str) -> None:
    """Each message id the code says has a non-empty translation, with the same {fields}, in each shipped catalog."""
    shipped = catalog(locale)
    messages = extracted()
    assert len(messages) > 100
    missing, broken = [], []
    for key, message in messages.items():
        entry = shipped.get(message if isinstance(message, str) else message[0])
        strings = [] if entry is None else ([entry.string] if isinstance(entry.string, str) else list(entry.string))
        if entry is None or not strings or not all(strings):
            missing.append(key)
            continue
        wanted = set(PLACEHOLDER.findall(key))
        if any(set(PLACEHOLDER.findall(s)) != wanted for s in strings):
            broken.append(key)
    assert missing == [], f"untranslated in {locale}: {missing[:5]}"
    assert broken == [], f"fields differ in {locale}: {broken[:5]}"
    assert not [m.id for m in shipped if m.id and m.fuzzy]


def panic_signal(**changes: Any) -> Signal:
    base: dict[str, Any] = {
        "source": "m3",
        "event_id": "evt_1",
        "type": "panic.ui",
        "ts": datetime(2026, 1, 7, 10, 12, tzinfo=UTC),
        "subject": "actor:raz",
        "actor_display": "Raz",
        "whisper": "Sunt aici. Nu e urgență. Aș vrea însoțire.",
        "suggested_responses": ("soft-checkin", "hold-space"),
        "care_window_minutes": 30,
    }
    return Signal(**(base | changes))


def escalation_signal() -> Signal:
    return Signal(
        source="aisha",
        event_id="evt_2",
        type="care.escalation_detected",
        ts=datetime(2026, 1, 26, 12, 34, tzinfo=UTC),
        subject="tenant:a11dfb63-4b18-4eb8-872e-747af2e37c46",
        reason="Caller asked for a human twice",
        reasons=("explicit_human_request", "negative_sentiment"),
        confidence="high",
        entity_type="contact",
        about="Renewal call",
    )


def invite(locale: str, signal: Signal | None = None, responses: tuple[str, ...] | None = None) -> Invite:
    signal = signal or panic_signal()
    return Invite(
        invitation_id=7,
        channel="sms",
        code="K7QX",
        agent=Agent("ana", "Ana", groups=("care-circle",), locale=locale, tz="Europe/Bucharest"),
        signal=signal,
        responses=responses or signal.suggested_responses or ("on-it",),
        action_url="https://relay.example/a/t",
        deep_link="https://app.example/app/contacts/6b1c" if signal.source == "aisha" else None,
        words=LEXICON.words(locale),
    )


def join(locale: str) -> Join:
    agent = Agent("ana", "Ana", groups=("care-circle",), locale=locale)
    return Join(agent=agent, channel="sms", code="K7QX", words=LEXICON.words(locale))


LOOP = LoopSnapshot("done", acks=(Note("bo", "Bo", "hold-space"),), done=Note("ana", "Ana", "held-space"))
OPEN = replies.OpenInvite("K7QX", ("soft-checkin", "hold-space"))


def _words_of(locale: str) -> dict[str, Callable[[], Any]]:
    """Every function that words something an agent reads, for one language."""
    words = LEXICON.words(locale)
    m3, aisha, status = (
        invite(locale),
        invite(locale, escalation_signal()),
        invite(locale, panic_signal(type="status.set", context_status="yellow", context_note="low energy")),
    )
    return {
        "headline": lambda: compose.headline(m3),
        "headline aisha": lambda: compose.headline(aisha),
        "headline status": lambda: compose.headline(status),
        "details": lambda: compose.details(status),
        "window": lambda: compose.window_offer(m3),
        "question": lambda: compose.question(m3),
        "question aisha": lambda: compose.question(aisha),
        "reply line": lambda: compose.reply_line(m3),
        "text message": lambda: compose.text_message(m3),
        "text message aisha": lambda: compose.text_message(aisha),
        "template variables": lambda: compose.template_variables(aisha)["2"],
        "ack note": lambda: compose.ack_note("Bo", "hold-space", words),
        "done note": lambda: compose.done_note("Ana", "held-space", words),
        "update notes": lambda: compose.update_notes(LOOP, words),
        "join message": lambda: compose.join_message(join(locale)),
        "join slack text": lambda: compose.join_slack_text(join(locale)),
        "joined text": lambda: compose.joined_text("Ana", words),
        "slack blocks": lambda: blocks.invitation_blocks(m3),
        "slack answered": lambda: blocks.answered_blocks(m3, compose.update_notes(LOOP, words), done=False),
        "slack modal": lambda: blocks.done_modal(m3),
        "slack message view": lambda: blocks.message_view(words._("This invitation is no longer here."), words),
        "slack /care": lambda: blocks.open_list([(m3, "acked")], words),
        "slack /care empty": lambda: blocks.open_list([], words),
        "slack join": lambda: blocks.join_blocks(join(locale)),
        "slack joined": lambda: blocks.joined_blocks(compose.joined_text("Ana", words)),
        "menu": lambda: replies.menu_text("K7QX", words),
        "list": lambda: replies.listing_text([(OPEN, "Raz")], words=words),
        "list empty": lambda: replies.listing_text([], words=words),
        "thanks": lambda: replies.thanks("Ana", words._("recorded: {label}", label=words.label("hold-space")), words),
        "not joined": lambda: replies.not_joined("wrong_code", words),
        **{
            f"refusal {reason}": (
                lambda reason=reason: replies.problem_text(replies.Problem(reason, "K7QX", "ZZZZ"), [OPEN, OPEN], words)
            )  # type: ignore[misc]
            for reason in ("no_open", "need_code", "unknown_code", "bad_choice", "not_understood")
        },
        "label": lambda: [words.label(slug) for slug in BUILT_IN],
        "description": lambda: [
            words.description(slug) for slug in ("soft-checkin", "hold-space", "quiet-update", "on-it")
        ],
        "duration": lambda: words.duration(90),
        "moment": lambda: words.moment(datetime(2026, 1, 7, 10, 12, tzinfo=UTC), "Europe/Bucharest"),
    }


@pytest.mark.parametrize("name", sorted(_words_of("en")))
def test_every_agent_facing_function_speaks_romanian_to_a_romanian_agent(name: str) -> None:
    """For an agent whose locale is ro, each function that words something they read answers in Romanian."""
    english, romanian = _words_of("en")[name](), _words_of("ro")[name]()
    assert romanian != english
    text = str(romanian)
    for phrase in ("Reply ", "Thank you", "would welcome", "invitation", "Close the loop", " is here", "Hold space"):
        assert phrase not in text, (name, phrase, text)


def test_the_seed_invitation_in_romanian_reads_whole_and_warm() -> None:
    """The seed's panic.ui for a Romanian agent: Romanian words with diacritics around the whisper, labels in the reply line."""
    text = compose.text_message(invite("ro"))
    assert text == (
        "Raz a trimis un semnal blând: „Sunt aici. Nu e urgență. Aș vrea însoțire.”\n"
        "Raz s-ar bucura de companie în următorul interval de 30 de minute — fără presiune.\n"
        "Răspunde K7QX 1 pentru Întreabă blând ce face, K7QX 2 pentru Stai alături. Sau deschide https://relay.example/a/t"
    )
    assert re.search(r"Răspunde (\S+) 1", text).group(1) == "K7QX"  # type: ignore[union-attr]


def test_the_care_window_is_an_offer_and_left_out_when_unlimited() -> None:
    """A 30-minute window reads as an offer; an unlimited one is not mentioned at all."""
    assert compose.window_offer(invite("en")) == "Raz would welcome company within the next 30 minutes — no pressure."
    assert compose.window_offer(invite("en", panic_signal(care_window_minutes=90))).endswith(
        "within the next 1 hour and 30 minutes — no pressure."
    )
    unlimited = invite("en", panic_signal(care_window_minutes=None))
    assert compose.window_offer(unlimited) == ""
    assert "within" not in compose.text_message(unlimited)


def test_status_set_shows_its_status_and_note_on_every_channel() -> None:
    """A status.set's context.status and context.note reach the text message, Slack and the template."""
    status = invite("en", panic_signal(type="status.set", context_status="yellow", context_note="low energy"))
    text = compose.text_message(status)
    assert 'Status: "yellow" — "low energy"' in text
    slack = str(blocks.invitation_blocks(status))
    assert "yellow" in slack and "low energy" in slack
    assert text.splitlines()[-1].startswith("Reply K7QX 1 for Check in gently")  # the relay's instructions last


def test_aisha_invitations_name_reasons_confidence_subject_and_link_without_alarm() -> None:
    """An escalation reads as plain words: reasons, confidence, meta.subject and the deep link; never alarm words."""
    text = compose.text_message(invite("en", escalation_signal()))
    assert text.startswith("A contact could use a person: asked for a person, sounded unhappy (high confidence).\n")
    assert 'About: "Renewal call"' in text and "Open in AiSHA: https://app.example/app/contacts/6b1c" in text
    assert text.splitlines()[-1].startswith("Reply K7QX 1 for I'll reach out.")
    for word in ("urgent", "alert", "escalation"):
        assert word not in text.lower()


@pytest.mark.parametrize("responses", [("on-it",), ("soft-checkin", "hold-space"), ("a", "b", "c", "d")])
@pytest.mark.parametrize("locale", LOCALES)
def test_the_question_is_a_whole_sentence_whatever_the_number_of_responses(
    responses: tuple[str, ...], locale: str
) -> None:
    """No "Would you like to on-it?": the question never lists slugs, in either language."""
    for signal in (panic_signal(), escalation_signal()):
        question = compose.question(invite(locale, signal, responses))
        assert question.endswith("?") and question[0].isupper()
        assert not any(r in question for r in responses if len(r) > 1)


def test_labels_built_in_unknown_slugs_as_words_and_the_slug_recorded() -> None:
    """Built-in labels in en and ro, an unknown slug read as words, buttons valued by the slug."""
    en, ro = LEXICON.words("en"), LEXICON.words("ro")
    assert [en.label(s) for s in ("soft-checkin", "hold-space", "quiet-update", "on-it")] == [
        "Check in gently",
        "Hold space",
        "Noted, quietly",
        "I'll reach out",
    ]
    assert [ro.label(s) for s in ("soft-checkin", "hold-space", "quiet-update", "on-it")] == [
        "Întreabă blând ce face",
        "Stai alături",
        "Am văzut, în liniște",
        "Iau eu legătura",
    ]
    assert as_words("soft-checkin") == "Soft checkin" and en.label("bring_tea") == "Bring tea"
    buttons = blocks.invitation_blocks(invite("ro"))[-1]["elements"]
    assert [(b["text"]["text"], b.get("value")) for b in buttons[:2]] == [
        ("Întreabă blând ce face", "7:1"),
        ("Stai alături", "7:2"),
    ]


def test_a_typed_sms_answer_may_be_the_slug_or_the_label() -> None:
    """`K7QX hold space`, `K7QX Stai alături` and `K7QX 2` all record the slug hold-space."""
    opened = replies.OpenInvite("K7QX", ("soft-checkin", "hold-space"), ("Întreabă blând ce face", "Stai alături"))
    for typed in ("K7QX hold space", "K7QX stai alături", "K7QX 2", "Stai Alături"):
        assert replies.resolve(replies.parse(typed), [opened]) == replies.Ack("K7QX", "hold-space"), typed


def test_a_responses_file_adds_and_overrides_labels_per_language(tmp_path: Path) -> None:
    """RELAY_RESPONSES_FILE: a new slug worded in both languages, a built-in label overridden in one."""
    path = tmp_path / "responses.toml"
    path.write_text(
        '[en.visit]\nlabel = "Drop by"\ndescription = "Go and see them."\n'
        '[ro.visit]\nlabel = "Trec pe la tine"\n'
        '[en.soft-checkin]\nlabel = "Send a kind word"\n',
        encoding="utf-8",
    )
    lexicon = Lexicon("en", read_responses(path))
    en, ro = lexicon.words("en"), lexicon.words("ro")
    assert (en.label("visit"), en.description("visit"), ro.label("visit")) == (
        "Drop by",
        "Go and see them.",
        "Trec pe la tine",
    )
    assert en.label("soft-checkin") == "Send a kind word" and ro.label("soft-checkin") == "Întreabă blând ce face"
    text = compose.text_message(replace(invite("en", responses=("visit", "soft-checkin")), words=en))
    assert "Reply K7QX 1 for Drop by, K7QX 2 for Send a kind word." in text


@pytest.mark.parametrize(
    ("content", "said"),
    [
        ('[fr.visit]\nlabel = "Passer"\n', "[fr] is not a language the relay speaks; use en, ro"),
        ("[en.visit]\n", "[en.visit]: label must be 1 to 75 printable characters"),
        ('[en.visit]\nlabel = "x"\ncolour = "red"\n', "[en.visit]: unknown key 'colour'; use label and description"),
        ("[en\n", "is not TOML"),
    ],
)
def test_a_bad_responses_file_stops_start_up_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: str, said: str
) -> None:
    """A responses file the relay cannot use is refused at start with one line naming the variable and the fix."""
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "responses.toml"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ResponsesFileError, match=re.escape(said)):
        read_responses(path)
    with clean_env_vars(RELAY_RESPONSES_FILE=str(path)), pytest.raises(ConfigError) as raised:
        load(serving=False)
    message = str(raised.value)
    assert message.startswith("RELAY_RESPONSES_FILE: ") and said in message and "\n" not in message


def test_the_default_locale_is_english_and_must_be_one_the_relay_speaks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """RELAY_DEFAULT_LOCALE defaults to en, takes ro, and refuses a language without a catalog."""
    monkeypatch.chdir(tmp_path)
    with clean_env_vars():
        assert load(serving=False).relay_default_locale == "en"
    with clean_env_vars(RELAY_DEFAULT_LOCALE="ro"):
        assert load(serving=False).relay_default_locale == "ro"
    with clean_env_vars(RELAY_DEFAULT_LOCALE="fr"), pytest.raises(ConfigError, match="use one of en, ro"):
        load(serving=False)
    assert Lexicon("ro").words(None).locale == "ro" and Lexicon("ro").words("en").locale == "en"


def test_parse_responses_refuses_a_bad_slug() -> None:
    """A slug is what the relay records: 1 to 64 plain characters."""
    with pytest.raises(ResponsesFileError, match="a response slug is"):
        parse_responses({"en": {"no spaces": {"label": "x"}}})


def test_a_page_for_someone_outside_the_directory_follows_lang_then_the_browser() -> None:
    """?lang= first, then Accept-Language by quality, else English."""
    assert LEXICON.for_reader("ro", "en").locale == "ro"
    assert LEXICON.for_reader(None, "fr-FR,ro-RO;q=0.9,en;q=0.8").locale == "ro"
    assert LEXICON.for_reader(None, "en;q=0.5,ro;q=0.9").locale == "ro"
    assert LEXICON.for_reader("xx", "de").locale == "en"
    assert LEXICON.for_reader(None, "").locale == "en"


def test_english_text_messages_are_unchanged_but_for_labels_and_the_window() -> None:
    """An English agent reads the words they read before; the contract's additions only."""
    text = compose.text_message(invite("en"))
    assert text.splitlines()[0] == 'Raz sent a gentle signal: "Sunt aici. Nu e urgență. Aș vrea însoțire."'
    buffer = io.StringIO(text)
    assert len(buffer.getvalue().splitlines()) == 3
