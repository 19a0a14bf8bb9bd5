"""What must never reach a log line, a metric label or an audit line (CONTRACT sections 5 and 7).

Gathered from the tests' own material, so a fixture or a test person added later is covered
without a list to keep: the whispers, notes and display names of `tests/fixtures/`, the
display names given to agents in test sources (`"display": "Ana"`), and every full phone
number the tests use. Names are matched whole and case-sensitively ("Ana", not "ana", the
agent's id, nor "Analyzed"); whispers and notes also by their first words, so a whisper cut
short ("…") is still found.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

TESTS = Path(__file__).resolve().parent
#: fields of a sender's payload that carry a person's words or name
CARE_FIELDS = frozenset({"whisper", "note", "display", "display_name", "actor_display"})
_PHONE = re.compile(r"""["'](\+\d{11,15})["']""")
_DISPLAY = re.compile(r"""["']display["']\s*:\s*["']([^"']{2,40})["']""")
#: a whisper or note is also looked for by its beginning (a body cuts it with "…")
PREFIX_CHARS = 20


def _walk(value: Any, key: str | None = None) -> Iterator[tuple[str, str]]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _walk(v, k)
    elif isinstance(value, list):
        for v in value:
            yield from _walk(v, key)
    elif isinstance(value, str) and key in CARE_FIELDS and value.strip():
        yield key, value


@cache
def needles() -> tuple[tuple[str, re.Pattern[str]], ...]:
    """(what it is, the pattern that finds it) for every piece of care data the tests use."""
    found: dict[str, str] = {}
    for path in sorted((TESTS / "fixtures").rglob("*.json")):
        for key, text in _walk(json.loads(path.read_text(encoding="utf-8"))):
            found.setdefault(text, key)
            if key != "display" and len(text) > PREFIX_CHARS:
                found.setdefault(text[:PREFIX_CHARS], f"{key} (its beginning)")
    for path in sorted(TESTS.rglob("*.py")):
        source = path.read_text(encoding="utf-8")
        for number in _PHONE.findall(source):
            found.setdefault(number, "phone number")
            found.setdefault(number.lstrip("+"), "phone number (digits)")
        for name in _DISPLAY.findall(source):
            found.setdefault(name, "display name")
    out = []
    for text, what in found.items():
        if what in {"display name", "display"}:
            pattern = re.compile(rf"(?<![\w]){re.escape(text)}(?![\w])")
        elif what.startswith("phone number"):
            pattern = re.compile(rf"(?<!\d){re.escape(text)}(?!\d)")
        else:
            pattern = re.compile(re.escape(text))
        out.append((f"{what} {text!r}", pattern))
    return tuple(out)


def leaks(text: str) -> list[str]:
    """What of the care data `text` contains (empty: nothing)."""
    return [what for what, pattern in needles() if pattern.search(text)]
