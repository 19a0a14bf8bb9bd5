"""Redaction for anything that may reach a log, a table or an audit row."""

from __future__ import annotations


def redact(number: str | None) -> str | None:
    """A phone number as `+40…1234`: country prefix and last four digits only."""
    if not number:
        return number
    bare = number.removeprefix("whatsapp:")
    if len(bare) <= 7:
        return "…" + bare[-2:]
    return f"{bare[:3]}…{bare[-4:]}"
