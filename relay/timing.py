"""Routing's clock arithmetic: naive moments read as UTC, quiet hours, the care window.

Pure: no clock reads (`now` is always a parameter).

- A naive datetime (now, ts, expiries) is read as UTC rather than raising.
- Quiet hours are `[start, end)` in the agent's zone (None or "" means UTC). Quiet hours
  or a zone that cannot be read count as quiet all day. `parse_quiet_hours` rejects equal
  start and end as ambiguous.
- The care window of an AiSHA signal is AISHA_CARE_WINDOW_MINUTES; of an M3 signal, its own
  `care_window_minutes` (none: no window).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from relay.model import RoutingSettings, Signal

__all__ = ["aware", "in_quiet_hours", "parse_quiet_hours", "window_passed"]

_QUIET_HOURS = re.compile(r"([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)")


def aware(moment: datetime) -> datetime:
    """`moment`, read as UTC when it is naive."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def parse_quiet_hours(text: str) -> tuple[time, time]:
    """Parse "HH:MM-HH:MM" (24 h, may wrap midnight) into (start, end); ValueError if bad."""
    match = _QUIET_HOURS.fullmatch(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"quiet hours must look like 22:00-07:00, not {text!r}")
    h1, m1, h2, m2 = (int(part) for part in match.groups())
    start, end = time(h1, m1), time(h2, m2)
    if start == end:
        raise ValueError("quiet hours must start and end at different times")
    return start, end


def in_quiet_hours(quiet_hours: str | None, tz: str | None, now: datetime) -> bool:
    """Whether `now` falls in the agent's quiet hours; unreadable hours or zone count as quiet."""
    if quiet_hours is None or not quiet_hours.strip():
        return False
    try:
        start, end = parse_quiet_hours(quiet_hours)
        zone = ZoneInfo(tz) if tz else UTC
    except (ValueError, KeyError):  # ZoneInfoNotFoundError is a KeyError
        # Fail safe: a phone is not paged at 3 a.m. because a setting was mistyped.
        return True
    local = aware(now).astimezone(zone).time()
    if start < end:
        return start <= local < end
    return local >= start or local < end


def window_passed(signal: Signal, now: datetime, settings: RoutingSettings) -> bool:
    """Whether the signal's care window has passed at `now` (an aware moment)."""
    if signal.source == "aisha":
        minutes: int | None = settings.aisha_care_window_minutes
    else:
        minutes = signal.care_window_minutes
    if minutes is None:
        return False
    # now - ts, not ts + window: a sender's ts may sit at the end of the calendar, where the sum overflows
    return now - aware(signal.ts) > timedelta(minutes=minutes)
