"""Redaction for anything that may reach a log, a table or an audit row."""

from __future__ import annotations

import re

from relay.phones import parts

#: a national number this short shows only its last two digits (four would be most of it).
_SHORT_NATIONAL = 8


def redact(number: str | None) -> str | None:
    """A phone number as `+40…1234` / `+1…4567`: its country calling code and last four digits only.

    Never raises. A national number under eight digits shows its last two; anything that is
    not read as a number shows at most its last two characters.
    """
    if not number:
        return number
    read = parts(number)
    if read is None:
        bare = number.removeprefix("whatsapp:").strip()
        return "…" + bare[-2:] if bare else "…"
    country, national = read
    tail = national[-4:] if len(national) >= _SHORT_NATIONAL else national[-2:]
    return f"+{country}…{tail}"


#: a number written in E.164 or near it (`+40 722 123 456`), inside free text such as a provider's error
_NUMBER_IN_TEXT = re.compile(r"\+\d[\d ().-]{5,}\d")


def redact_numbers(text: str | None) -> str | None:
    """Free text (a provider's error, an audit detail) with every phone number in it redacted."""
    if not text:
        return text
    return _NUMBER_IN_TEXT.sub(lambda m: redact(m.group(0)) or "…", text)


#: any run of digits a phone number could be (local or international, spaced or not)
_DIGITS_IN_TEXT = re.compile(r"\+?\d[\d ().-]{4,}\d")


def without_numbers(text: str) -> str:
    """Free text for a page that shows no phone number at all (the status page of the person in
    need): every run of six or more digits, however written, becomes "…"."""
    return _DIGITS_IN_TEXT.sub("…", text)
