"""Console sessions ended by signing out (CONTRACT section 11): the storage behind a sign-out
that holds on every replica.

A console session lives in a signed cookie, so a copy of it would open the console until it
expires. Signing out keeps the session's id here until then; every console request asks
`session_ended`, one primary-key read. Sync functions over the writer's (or reader's) `Tx`.
"""

from __future__ import annotations

from inbox.tx import Tx


def end_session(tx: Tx, session_id: str, *, admin: str, at: int, until: int) -> None:
    """The session `session_id` is over from `at`; kept until `until` (its cookie's end at the latest).
    Sessions whose cookies have expired meanwhile are forgotten (`ix_console_session_end_until`)."""
    tx.execute("DELETE FROM console_session_end WHERE until < ?", (at,))
    tx.execute(
        "INSERT INTO console_session_end (session_id, admin, at, until) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (session_id) DO NOTHING",
        (session_id, admin, at, until),
    )


def session_ended(tx: Tx, session_id: str) -> bool:
    """Whether its admin signed out of this session (its primary key: one indexed read)."""
    return tx.execute("SELECT 1 FROM console_session_end WHERE session_id = ?", (session_id,)).fetchone() is not None
