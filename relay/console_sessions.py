"""Console sessions ended by signing out (CONTRACT section 11), for the console's pages.

A session is a signed cookie that lasts 8 hours; signing out must end it for every copy of
that cookie on every replica, so the end is kept in storage (`inbox.console_sessions`), not
in one process's memory, and each console request reads it (one primary-key look-up).
Ending one session leaves the admin's other sessions, and other admins', as they are.
"""

from __future__ import annotations

from inbox import console_sessions as stored
from inbox.reader import Reader
from inbox.writer import Writer
from relay.model import Clock, millis

#: session ids are made by the console (`secrets.token_urlsafe`); anything longer is not one
MAX_SESSION_ID_CHARS = 64


class ConsoleSessions:
    """Which console sessions were signed out of, over one database; times from `clock`."""

    def __init__(self, writer: Writer, reader: Reader, *, clock: Clock) -> None:
        self._writer = writer
        self._reader = reader
        self._clock = clock

    async def end(self, session_id: str, admin: str, *, lasts_sec: int) -> None:
        """The session is over, everywhere; kept for `lasts_sec`, after which its cookie has expired anyway."""
        at = millis(self._clock)
        await self._writer.run(
            lambda tx: stored.end_session(
                tx, session_id[:MAX_SESSION_ID_CHARS], admin=admin[:100], at=at, until=at + lasts_sec * 1000
            )
        )

    async def ended(self, session_id: str) -> bool:
        """Whether the session was signed out of (on this replica or another)."""
        return await self._reader.run(stored.session_ended, session_id[:MAX_SESSION_ID_CHARS])
