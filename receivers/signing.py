"""The HMAC mechanics every sender's signature shares (CONTRACT.md section 3).

Each sender's header grammar lives with the sender (`receivers.m3.signature`,
`receivers.aisha.signature`); this module holds what they have in common: the
hex HMAC-SHA256, a constant-time compare against
every configured secret (rotation), the timestamp grammar and the window check.
Failures raise the 401 errors from `relay.errors`; their `detail` never echoes a
secret, a signature or body content.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Iterable, Sequence

from relay.errors import TimestampOutOfWindowError

# [0-9] rather than \d or str.isdigit: those accept non-ASCII digits that int() would
# happily turn into a timestamp. fullmatch, because `$` also matches before a final "\n".
TIMESTAMP = re.compile(r"[0-9]{1,10}", re.ASCII)
HEX_SIGNATURE = re.compile(r"[0-9a-fA-F]{64}", re.ASCII)


def matches(message: bytes, candidates: Iterable[str], secrets: Sequence[str]) -> bool:
    """Whether any candidate hex signature is the HMAC of `message` under any non-empty secret."""
    # A bare str is a Sequence[str] too: iterating it would make every character a key.
    if isinstance(secrets, str):
        raise TypeError("secrets must be a sequence of secrets, not one string")
    wanted = [candidate.lower() for candidate in candidates]
    for secret in secrets:
        # An empty key is one anybody can sign with: skip it, so that a missing secret
        # fails closed instead of verifying everything signed with "".
        if not secret:
            continue
        expected = hmac_hex(secret, message)
        for candidate in wanted:
            if hmac.compare_digest(expected, candidate):
                return True
    return False


def hmac_hex(secret: str, message: bytes) -> str:
    """The hex HMAC-SHA256 of `message`; an empty secret is refused, never used."""
    if not secret:
        raise ValueError("refusing to sign with an empty secret")
    return hmac.digest(secret.encode("utf-8"), message, "sha256").hex()


def format_ts(ts: int) -> str:
    """`ts` as the digits a signature header carries; ValueError for one a receiver would refuse."""
    # Our own receivers must accept what we send, so never sign a timestamp they would refuse.
    raw_ts = str(ts) if type(ts) is int else ""
    if not TIMESTAMP.fullmatch(raw_ts):
        raise ValueError("ts must be an int of Unix seconds between 0 and 9999999999")
    return raw_ts


def check_window(ts: float, *, now: int, window_sec: int, source: str) -> None:
    """Raise TimestampOutOfWindowError when `ts` is more than `window_sec` from `now`."""
    skew = abs(now - ts)
    if skew > window_sec:
        direction = "behind" if ts < now else "ahead of"
        raise TimestampOutOfWindowError(
            f"{source} is {int(skew)} s {direction} the relay's clock, outside the {window_sec} s "
            "window; sign with the current time and check the sender's clock."
        )
