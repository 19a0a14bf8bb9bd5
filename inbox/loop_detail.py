"""A loop as it stands: its invitations, acks, done and passes, read in one job.

The detail gathers four tables and the agents' displays in one sync read, run by the
reader (`inbox.reader.Reader`) or inside a write job, and returns frozen records.
"""

from __future__ import annotations

from dataclasses import dataclass

from inbox.tx import Tx


@dataclass(frozen=True, slots=True)
class InvitationLine:
    """One invitation of a loop, as the loop shows it."""

    id: int
    agent: str
    channel: str
    status: str
    code: str | None
    #: who asked for it, when a person did ("admin:NAME"); None when the relay decided
    invited_by: str | None = None


@dataclass(frozen=True, slots=True)
class AckLine:
    """One agent's ack, with the display they had when read (their id once they are gone)."""

    agent: str
    display: str
    action: str
    at: int
    via: str


@dataclass(frozen=True, slots=True)
class DoneLine:
    """The done that closed a loop."""

    agent: str
    display: str
    outcome: str
    note: str
    at: int
    via: str


@dataclass(frozen=True, slots=True)
class PassLine:
    """One agent's "not now" (CONTRACT section 10)."""

    agent: str
    display: str
    at: int
    via: str


@dataclass(frozen=True, slots=True)
class LoopDetail:
    """A loop's invitations, acks (oldest first), its done, if any, and the agents who passed."""

    invitations: tuple[InvitationLine, ...]
    acks: tuple[AckLine, ...]
    done: DoneLine | None
    passes: tuple[PassLine, ...] = ()


def loop_detail(tx: Tx, signal_id: int) -> LoopDetail:
    """Invitations, acks (with the agent's display; their id once they are gone) and the done of one signal."""
    invitations = tx.execute(
        "SELECT id, agent_id, channel, status, code, invited_by FROM invitation WHERE signal_id = ? ORDER BY id",
        (signal_id,),
    ).fetchall()
    acks = tx.execute(
        "SELECT k.agent_id, COALESCE(a.display, k.agent_id), k.action, k.at, k.via FROM ack k"
        " LEFT JOIN agent a ON a.id = k.agent_id WHERE k.signal_id = ? ORDER BY k.id",
        (signal_id,),
    ).fetchall()
    done = tx.execute(
        "SELECT d.agent_id, COALESCE(a.display, d.agent_id), d.outcome, d.note, d.at, d.via FROM done d"
        " LEFT JOIN agent a ON a.id = d.agent_id WHERE d.signal_id = ?",
        (signal_id,),
    ).fetchone()
    passes = tx.execute(
        "SELECT p.agent_id, COALESCE(a.display, p.agent_id), p.at, p.via FROM loop_pass p"
        " LEFT JOIN agent a ON a.id = p.agent_id WHERE p.signal_id = ? ORDER BY p.at, p.agent_id",
        (signal_id,),
    ).fetchall()
    return LoopDetail(
        invitations=tuple(InvitationLine(int(i), a, c, s, code, by) for i, a, c, s, code, by in invitations),
        acks=tuple(AckLine(a, d, action, int(at), via) for a, d, action, at, via in acks),
        done=None if done is None else DoneLine(done[0], done[1], done[2], done[3], int(done[4]), done[5]),
        passes=tuple(PassLine(a, d, int(at), via) for a, d, at, via in passes),
    )
