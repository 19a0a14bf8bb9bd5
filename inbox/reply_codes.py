"""Reply codes: the 4-character codes open loops hold, each free among its agent's open loops.

A code is drawn at random and checked with point look-ups on `reply_code`'s key, so
picking one never reads an agent's history; the table's key stays the last word. A loop
that closes releases its codes for the agents' next loops.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import NamedTuple

from inbox.rows import marks
from inbox.tx import Tx

CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


class ReplyCodeValues(NamedTuple):
    """A reply code an open loop's invitation holds."""

    agent_id: str
    code: str
    signal_id: int
    invitation_id: int


_INSERT_REPLY_CODE = (
    f"INSERT INTO reply_code ({', '.join(ReplyCodeValues._fields)}) VALUES ({marks(len(ReplyCodeValues._fields))})"
)
#: (agent, code) pairs per look-up: two parameters each, far under every driver's limit
_PAIRS_PER_LOOKUP = 200
#: draws of fresh codes for those found taken; each draw misses with the share of the
#: 32^4 codes an agent holds, so only an agent holding nearly all of them runs out
MAX_CODE_DRAWS = 64


class NoFreeCodeError(Exception):
    """An agent holds (nearly) every reply code on open loops: no code is left to give."""


def random_code() -> str:
    """A 4-character reply code, drawn at random."""
    base = len(CODE_ALPHABET)
    n = secrets.randbelow(base**4)  # one draw, not four
    return (
        CODE_ALPHABET[n % base]
        + CODE_ALPHABET[n // base % base]
        + CODE_ALPHABET[n // base**2 % base]
        + CODE_ALPHABET[n // base**3]
    )


def codes_in_use(tx: Tx, pairs: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
    """Which of these (agent, code) pairs an open loop holds: point look-ups on `reply_code`'s key."""
    taken: set[tuple[str, str]] = set()
    for start in range(0, len(pairs), _PAIRS_PER_LOOKUP):
        chunk = pairs[start : start + _PAIRS_PER_LOOKUP]
        rows = tx.execute(
            "SELECT agent_id, code FROM reply_code WHERE " + " OR ".join(["(agent_id = ? AND code = ?)"] * len(chunk)),
            [value for pair in chunk for value in pair],
        ).fetchall()
        taken.update((str(r[0]), str(r[1])) for r in rows)
    return taken


def pick_codes(tx: Tx, agent_ids: Sequence[str]) -> list[str]:
    """A reply code for each new invitation of these agents (an agent may come more than once).

    Each code is free among the agent's open loops and among the codes picked here. Random
    candidates are checked a whole group at a time with point look-ups; those found taken
    are drawn again. The table's key stays the last word: a code another writer took in
    between is a unique violation when the row goes in.
    """
    codes: list[str] = [""] * len(agent_ids)
    drawn: set[tuple[str, str]] = set()
    wanted = list(range(len(agent_ids)))
    for _ in range(MAX_CODE_DRAWS):
        if not wanted:
            return codes
        candidates: list[tuple[int, str]] = []
        for index in wanted:
            agent_id = agent_ids[index]
            code = random_code()
            while (agent_id, code) in drawn:
                code = random_code()
            drawn.add((agent_id, code))
            candidates.append((index, code))
        taken = codes_in_use(tx, [(agent_ids[index], code) for index, code in candidates])
        wanted = []
        for index, code in candidates:
            if (agent_ids[index], code) in taken:
                wanted.append(index)
            else:
                codes[index] = code
    if wanted:
        raise NoFreeCodeError(f"no free reply code for {agent_ids[wanted[0]]!r}")
    return codes


def insert_reply_codes(tx: Tx, rows: Sequence[ReplyCodeValues]) -> None:
    """The codes new invitations hold; a code already held is a unique violation."""
    tx.executemany(_INSERT_REPLY_CODE, rows)


def release_codes(tx: Tx, signal_id: int) -> None:
    """The loop closed: its invitations' codes are free for the agents' next loops."""
    tx.execute("DELETE FROM reply_code WHERE signal_id = ?", (signal_id,))
