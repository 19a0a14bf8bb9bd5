"""HTTP header values read the one way: whatever the case of the key, and total on garbled input."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

V = TypeVar("V")


def header(headers: Mapping[str, V], name: str) -> V | None:
    """The value of header `name`, whatever the case of its key; None when absent."""
    # A CIMultiDict answers .get case-insensitively; a plain dict (tests, the CLI, an SDK's response) does not.
    value = headers.get(name)
    if value is not None:
        return value
    wanted = name.lower()
    for key, candidate in headers.items():
        if key.lower() == wanted:
            return candidate
    return None


def media_type(content_type: str) -> str:
    """A Content-Type header's media type, lower case; a garbled header is simply not that type."""
    return content_type.split(";", 1)[0].strip().lower()
