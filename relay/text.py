"""Sender text made safe to show: on one line, with nothing that steers a terminal, and cut to fit.

Senders choose ids, names, whispers and reasons. Printed raw, an ESC sequence retitles or
clears the operator's terminal, a carriage return overwrites a table row, a bidi override
reverses what follows, and a newline in a text message starts a line that can pose as
the relay's own instructions. Pure functions; no imports of ours.
"""

from __future__ import annotations

import re

#: C0 controls (tab and newline too), DEL, C1 controls, and the bidi embeddings,
#: overrides and isolates: each becomes a space.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def one_line(text: str) -> str:
    """`text` on one line: control and bidi characters become spaces, runs of white space one space."""
    # str.split() also splits on U+2028/U+2029 and the other Unicode line breaks.
    return " ".join(_UNSAFE.sub(" ", text).split())


def size(text: str) -> int:
    """Characters as Twilio counts a message body: UTF-16 code units, so an emoji counts two."""
    return len(text.encode("utf-16-le")) // 2


def clip(text: str, limit: int) -> str:
    """`text` if `size` finds it within `limit`, else as much of its start as fits with "…"."""
    if size(text) <= limit:
        return text
    kept: list[str] = []
    used = 1  # the "…"
    for char in text:
        used += size(char)
        if used > limit:
            break
        kept.append(char)
    return "".join(kept) + "…" if limit > 0 else ""
