"""Composite setting values: parsed from their environment text and checked, one line per error.

A message names what to fix (an entry by its position or name) and never echoes a secret.
`relay.settings` calls these from its validators; a ValueError here becomes the one line
`load()` reports.
"""

from __future__ import annotations

import re

__all__ = [
    "ADMIN_NAME",
    "MAKE_SECRET",
    "MAX_SCHEDULE_STEPS",
    "MAX_SCHEDULE_STEP_SEC",
    "MIN_SECRET_LENGTH",
    "as_values",
    "check_admins",
    "check_app_token",
    "check_schedule",
    "check_twilio_sid",
    "comma_list",
    "parse_named_admins",
    "parse_schedule",
]

#: Outside --dev, no secret is shorter: a guessable key signs links and verifies senders.
MIN_SECRET_LENGTH = 16
#: an admin's name in RELAY_ADMINS: it is recorded as `by`, so it reads like one
ADMIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
#: a callback schedule names at most this many retries, each at most a week away
MAX_SCHEDULE_STEPS = 50
MAX_SCHEDULE_STEP_SEC = 7 * 86400
_TWILIO_SID = re.compile(r"[A-Z]{2}[0-9a-fA-F]{32}")
MAKE_SECRET = "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"  # noqa: S105 (a command, not a secret)


def comma_list(text: str) -> tuple[str, ...]:
    """The non-blank parts of a comma-separated value, stripped."""
    return tuple(part.strip() for part in text.split(",") if part.strip())


def parse_named_admins(text: str) -> tuple[tuple[str, str], ...]:
    """`name:token,…` as (name, token) pairs; every message names the entry by position, never by its token."""
    pairs: list[tuple[str, str]] = []
    for position, part in enumerate((p.strip() for p in text.split(",")), start=1):
        if not part:
            continue
        name, colon, token = (piece.strip() for piece in part.partition(":"))
        if not colon or not name or not token:
            raise ValueError(f"entry {position} is not name:token; write RELAY_ADMINS=ana:<token>,bo:<token>")
        pairs.append((name, token))
    return tuple(pairs)


def check_admins(value: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
    """Named admin tokens as they are: fit names, long enough tokens, no name or token twice."""
    names: set[str] = set()
    tokens: set[str] = set()
    for position, (name, token) in enumerate(value, start=1):
        if not ADMIN_NAME.fullmatch(name):
            raise ValueError(
                f"entry {position}: a name is 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit"
            )
        if len(token) < MIN_SECRET_LENGTH:
            raise ValueError(
                f"the token of '{name}' must be at least {MIN_SECRET_LENGTH} characters; make one with {MAKE_SECRET}"
            )
        if name.lower() in names:
            raise ValueError(f"'{name}' is named twice; each admin has one entry")
        if token in tokens:
            raise ValueError(f"the token of '{name}' is also another admin's; each admin has their own")
        names.add(name.lower())
        tokens.add(token)
    return value


def parse_schedule(text: str) -> tuple[int, ...]:
    """A callback schedule, "5,300,1800": whole seconds before each retry."""
    example = "e.g. 5,300,1800,7200"
    parts = [part.strip() for part in text.split(",")]
    if not any(parts):
        raise ValueError(f"name the seconds before each retry, comma-separated ({example})")
    if len(parts) > MAX_SCHEDULE_STEPS:
        raise ValueError(f"name at most {MAX_SCHEDULE_STEPS} retries")
    steps = []
    for part in parts:
        if not (part.isascii() and part.isdigit()) or not 1 <= int(part) <= MAX_SCHEDULE_STEP_SEC:
            raise ValueError(
                f"{part[:20]!r} is not a number of seconds from 1 to {MAX_SCHEDULE_STEP_SEC};"
                f" give whole seconds before each retry, comma-separated ({example})"
            )
        steps.append(int(part))
    return tuple(steps)


def check_schedule(value: tuple[int, ...]) -> tuple[int, ...]:
    """A callback schedule as it is: 1 to MAX_SCHEDULE_STEPS retries, each within a week."""
    if not value or len(value) > MAX_SCHEDULE_STEPS or not all(1 <= v <= MAX_SCHEDULE_STEP_SEC for v in value):
        raise ValueError(f"name 1 to {MAX_SCHEDULE_STEPS} retries, each from 1 to {MAX_SCHEDULE_STEP_SEC} seconds away")
    return value


def check_app_token(value: str) -> str:
    """A Slack app-level token (xapp-…), stripped."""
    if not value.strip().startswith("xapp-"):
        # the value itself is a secret: never echoed
        raise ValueError(
            "an app-level token starts with xapp- (Basic Information → App-Level Tokens, scope"
            " connections:write); a bot token (xoxb-) goes in SLACK_BOT_TOKEN"
        )
    return value.strip()


def check_twilio_sid(value: str, prefix: str) -> str:
    """A Twilio sid of the kind `prefix` names (MG: a Messaging Service, HX: a template), stripped."""
    value = value.strip()
    if not _TWILIO_SID.fullmatch(value) or not value.startswith(prefix):
        raise ValueError(f"a Twilio sid is {prefix} followed by 32 hexadecimal digits ({prefix}0123…)")
    return value


def as_values(value: tuple[str, ...] | tuple[tuple[str, str], ...] | str | None) -> tuple[str, ...]:
    """A secret setting's values; of named tokens (RELAY_ADMINS), the tokens."""
    if isinstance(value, tuple):
        return tuple(v[1] if isinstance(v, tuple) else v for v in value)
    return (value,) if value else ()
