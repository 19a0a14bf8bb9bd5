"""Response words: each slug's label and one-line description, per language (CONTRACT section 9).

A slug (`soft-checkin`) is what is recorded and sent back to the sender; a label ("Check in
gently") is what a person reads on a button, in a reply line or on a page. The seeds' slugs
and the close form's usual endings have labels built in (their words are gettext messages,
translated by the catalogs); `RELAY_RESPONSES_FILE` adds or overrides them per language:

```toml
[en.visit]
label = "Drop by"
description = "Go and see them in person."

[ro.visit]
label = "Trec pe la tine"
```

A slug nobody worded reads as words: "soft-checkin" → "Soft checkin". Pure, no I/O but
`read_responses`, which reads the file once at start and words any problem in one line.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

#: the languages the relay ships catalogs for (relay/locales/<locale>/LC_MESSAGES/messages.po)
LOCALES: tuple[str, ...] = ("en", "ro")
#: Slack's button text holds 75 characters; a label fits one
LABEL_MAX = 75
DESCRIPTION_MAX = 150
_SLUG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def N_(message: str) -> str:  # noqa: N802 - gettext's own name for "mark for extraction, translate later"
    """Mark a message for the catalogs without translating it here."""
    return message


@dataclass(frozen=True)
class ResponseWords:
    """A slug's label, and the line that says what it means (None when there is none)."""

    label: str
    description: str | None = None


#: the seeds' responses and the usual endings, as msgids: `relay.words.Words` translates them
BUILT_IN: Mapping[str, ResponseWords] = MappingProxyType(
    {
        "soft-checkin": ResponseWords(N_("Check in gently"), N_("A short, kind message to say you are there.")),
        "hold-space": ResponseWords(N_("Hold space"), N_("Be there with them, without fixing anything.")),
        "quiet-update": ResponseWords(N_("Noted, quietly"), N_("You saw it; no reply is expected.")),
        "on-it": ResponseWords(N_("I'll reach out"), N_("You will get in touch with them yourself.")),
        "held-space": ResponseWords(N_("I held space")),
        "talked": ResponseWords(N_("We talked")),
        "checked-in": ResponseWords(N_("I checked in")),
        "no-answer-needed": ResponseWords(N_("No answer was needed")),
        "done": ResponseWords(N_("Done")),
    }
)

#: language → slug → words, as RELAY_RESPONSES_FILE gives them
Responses = Mapping[str, Mapping[str, ResponseWords]]


def as_words(slug: str) -> str:
    """A slug nobody worded, read as words: "soft-checkin" → "Soft checkin"."""
    words = " ".join(re.split(r"[-_\s]+", slug.strip()))
    return words[:1].upper() + words[1:] if words else slug


class ResponsesFileError(ValueError):
    """RELAY_RESPONSES_FILE cannot be used; the message is one line naming what to fix."""


def _entry(locale: str, slug: str, value: object) -> ResponseWords:
    where = f"[{locale}.{slug}]"
    if not _SLUG.match(slug):
        raise ResponsesFileError(f"{where}: a response slug is 1 to 64 letters, digits, '.', '_' or '-'")
    if not isinstance(value, dict):
        raise ResponsesFileError(f"{where} must be a table with label (and optionally description)")
    unknown = sorted(set(value) - {"label", "description"})
    if unknown:
        raise ResponsesFileError(f"{where}: unknown key '{unknown[0]}'; use label and description")
    label, description = value.get("label"), value.get("description")
    if not isinstance(label, str) or not label.strip() or len(label) > LABEL_MAX or not label.isprintable():
        raise ResponsesFileError(f"{where}: label must be 1 to {LABEL_MAX} printable characters")
    if description is not None and (
        not isinstance(description, str) or len(description) > DESCRIPTION_MAX or not description.isprintable()
    ):
        raise ResponsesFileError(f"{where}: description must be up to {DESCRIPTION_MAX} printable characters")
    return ResponseWords(label.strip(), description.strip() if description and description.strip() else None)


def parse_responses(data: Mapping[str, object]) -> Responses:
    """A decoded responses file, checked: language tables of slug tables of label and description."""
    found: dict[str, dict[str, ResponseWords]] = {}
    for locale, table in data.items():
        if locale not in LOCALES:
            raise ResponsesFileError(f"[{locale}] is not a language the relay speaks; use {', '.join(LOCALES)}")
        if not isinstance(table, dict):
            raise ResponsesFileError(f"[{locale}] must be a table of responses, e.g. [{locale}.soft-checkin]")
        found[locale] = {slug: _entry(locale, slug, value) for slug, value in table.items()}
    return MappingProxyType({k: MappingProxyType(v) for k, v in found.items()})


def read_responses(path: Path | None) -> Responses:
    """RELAY_RESPONSES_FILE read and checked; empty when no file is configured."""
    if path is None:
        return MappingProxyType({})
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ResponsesFileError(f"cannot read {path}: {exc.strerror or type(exc).__name__}") from None
    except UnicodeDecodeError:
        raise ResponsesFileError(f"{path} is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ResponsesFileError(f"{path} is not TOML: {str(exc).splitlines()[0]}") from None
    return parse_responses(data)
