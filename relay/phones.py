"""Phone numbers as people write them, read into E.164 (the `phonenumbers` library).

`+40 722 123 456`, `(0722) 123-456` or `0722123456` with RELAY_DEFAULT_REGION `RO` all
read as `+40722123456`; anything that is not a valid number is refused with one sentence
that names the field. Pure: no I/O, no settings read here (the region is a parameter).
"""

from __future__ import annotations

import phonenumbers

from relay.text import clip, one_line

__all__ = ["EXAMPLE", "PhoneError", "parts", "region_code", "to_e164"]

#: how the refusals show a number written well.
EXAMPLE = "+40 722 123 456"
#: the longest input read at all (a number with spaces, brackets and an extension fits).
MAX_INPUT_CHARS = 40
#: how much of a refused input the sentence quotes back.
_QUOTED_CHARS = 24
_WHATSAPP = "whatsapp:"


class PhoneError(ValueError):
    """A number that cannot be read; the message is one sentence naming the field."""


def region_code(value: str) -> str:
    """An ISO 3166 country code the library knows (`ro` → `RO`); ValueError naming the choice otherwise."""
    code = value.strip().upper()
    if code not in phonenumbers.SUPPORTED_REGIONS:
        raise ValueError(
            f"{clip(one_line(value), _QUOTED_CHARS)!r} is not a country code; use two letters such as RO, GB or US"
        )
    return code


def to_e164(raw: str, *, field: str, region: str | None = None, whatsapp: bool = False) -> str:
    """`raw` as E.164 (`+40722123456`), or PhoneError naming `field`.

    `region` (an ISO country code, e.g. `RO`) reads numbers written without `+`; without it
    such a number is refused with a sentence that says what is missing. With `whatsapp`,
    Twilio's `whatsapp:` prefix is accepted and dropped.
    """
    text = raw.strip()
    if whatsapp and text[: len(_WHATSAPP)].lower() == _WHATSAPP:
        text = text[len(_WHATSAPP) :].strip()
    shown = clip(one_line(raw.strip()), _QUOTED_CHARS)
    if not text or len(text) > MAX_INPUT_CHARS:
        raise PhoneError(
            f"{field}: {shown!r} is not a valid phone number; write it with its country code, e.g. {EXAMPLE}"
        )
    if not text.startswith("+") and region is None:
        raise PhoneError(
            f"{field}: {shown!r} has no country code; write it with + and its country code (e.g. {EXAMPLE}),"
            " or set RELAY_DEFAULT_REGION to read numbers written locally"
        )
    try:
        number = phonenumbers.parse(text, None if text.startswith("+") else region)
    except phonenumbers.NumberParseException:
        number = None
    if number is None or not phonenumbers.is_valid_number(number):
        raise PhoneError(
            f"{field}: {shown!r} is not a valid phone number; write it with its country code, e.g. {EXAMPLE}"
        )
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def parts(number: str) -> tuple[int, str] | None:
    """(country calling code, national significant number) of an E.164-ish number; None if unreadable."""
    text = number.removeprefix(_WHATSAPP).strip()
    if not text.startswith("+") or len(text) > MAX_INPUT_CHARS:
        return None
    try:
        parsed = phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException:
        return None
    if parsed.country_code is None:
        return None
    return parsed.country_code, phonenumbers.national_significant_number(parsed)
