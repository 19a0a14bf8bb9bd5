"""Storage for what Twilio posts: inbound messages kept once per MessageSid, unknown-sender
attempts (redacted, rate-limited per number), opt-outs, and delivery status.

Sync functions over the writer's `Tx`, like the other storage modules.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from inbox import audit, directory
from inbox.outbox import enqueue
from inbox.tx import Tx

#: a claim on a MessageSid that was never settled (the answering request died) lapses after this.
CLAIM_STALE_MS = 60_000
HOUR_MS = 3_600_000
#: delivery only moves up this ladder, so a late callback never moves it back.
DELIVERY_RANK = {"queued": 0, "sent": 1, "failed": 2, "delivered": 3, "read": 4}


def claim_message(tx: Tx, sid: str, channel: str, sender: str, at: int) -> bool:
    """Take a MessageSid for answering: False when it was (or is being) answered already."""
    row = tx.execute(
        "INSERT INTO inbound_message (message_sid, channel, from_redacted, at, outcome) VALUES (?, ?, ?, ?, 'received')"
        " ON CONFLICT (message_sid) DO NOTHING RETURNING id",
        (sid, channel, sender, at),
    ).fetchone()
    if row is not None:
        return True
    taken = tx.execute(
        "UPDATE inbound_message SET at = ? WHERE message_sid = ? AND outcome = 'received' AND at < ?",
        (at, sid, at - CLAIM_STALE_MS),
    )
    return taken.rowcount == 1


def settle_message(tx: Tx, sid: str, outcome: str) -> None:
    tx.execute("UPDATE inbound_message SET outcome = ? WHERE message_sid = ?", (outcome[:32], sid))


def release_message(tx: Tx, sid: str) -> None:
    tx.execute("DELETE FROM inbound_message WHERE message_sid = ? AND outcome = 'received'", (sid,))


def record_unknown(tx: Tx, *, sid: str, channel: str, sender: str, digest: str, limit: int, at: int) -> str:
    """'recorded' (a verification_attempt row), 'replay', or 'limited' (nothing stored)."""
    seen = tx.execute(
        "SELECT COUNT(*) FROM verification_attempt WHERE number_hash = ? AND at >= ?", (digest, at - HOUR_MS)
    ).fetchone()
    if int(seen[0]) >= limit:
        return "limited"
    claimed = tx.execute(
        "INSERT INTO inbound_message (message_sid, channel, from_redacted, at, outcome)"
        " VALUES (?, ?, ?, ?, 'unknown_sender') ON CONFLICT (message_sid) DO NOTHING RETURNING id",
        (sid, channel, sender, at),
    ).fetchone()
    if claimed is None:
        return "replay"
    tx.execute(
        "INSERT INTO verification_attempt (number_redacted, number_hash, channel, at, outcome) VALUES (?, ?, ?, ?, ?)",
        (sender, digest, channel, at, "unknown_number"),
    )
    return "recorded"


def record_opt(tx: Tx, agent_id: str, channel: str, opted_out: bool, at: int) -> None:
    directory.set_opted_out(tx, agent_id, channel, opted_out, at)
    audit.insert_audit(
        tx,
        kind="opt_out" if opted_out else "opt_in",
        at=at,
        agent_id=agent_id,
        action_origin="user_directed",
        policy_gate_result="allowed",
        reason=f"the agent {'opted out of' if opted_out else 'opted back in to'} {channel}",
        detail={"via": channel},
    )


@dataclass(frozen=True)
class Reported:
    """What a status callback was about: an invitation (`what` "invitation", its id) or a join code
    (`what` "join_code", its `verify` outbox row's id), on which channel, and whether it moved."""

    what: str
    id: int
    channel: str
    moved: bool


def record_status(
    tx: Tx, sid: str, status: str | None, error: str | None, opted_out: bool, at: int, outside_session: bool = False
) -> Reported | None:
    """Move the invitation sent as `sid` up the delivery ladder, or fail the join code sent as `sid`.

    None if nothing the relay sent went out as `sid`.
    """
    row = tx.execute(
        "SELECT id, agent_id, channel FROM invitation WHERE provider_id = ? AND channel IN ('sms', 'whatsapp')", (sid,)
    ).fetchone()
    if row is None:
        return _join_code_status(tx, sid, status, error, opted_out, at)
    invitation_id, agent_id, channel = int(row[0]), str(row[1]), str(row[2])
    moved = False
    if status is not None:
        below = [name for name, rank in DELIVERY_RANK.items() if rank < DELIVERY_RANK[status]]
        marks = ", ".join("?" * len(below))
        moved = (
            tx.execute(
                f"UPDATE invitation SET status = ?, error = ?, updated_at = ? WHERE id = ? AND status IN ({marks})",
                (status, error if status == "failed" else None, at, invitation_id, *below),
            ).rowcount
            > 0
        )
    if opted_out:
        directory.set_opted_out(tx, agent_id, channel, True, at)
    if outside_session and moved and status == "failed" and channel == "whatsapp":
        # WhatsApp could not reach the agent after all: the outbox invites them on their next channel
        payload = {"invitation_id": invitation_id, "outside_session": True}
        enqueue(tx, kind="invite", payload=payload, at=at, ref_id=invitation_id)
    return Reported("invitation", invitation_id, channel, moved)


def _join_code_status(
    tx: Tx, sid: str, status: str | None, error: str | None, opted_out: bool, at: int
) -> Reported | None:
    """A join code that did not arrive after all (WhatsApp outside the 24-hour session, 63016, or any
    other failure) fails its `sent` outbox row, as a send refused at once does: visible in the outbox
    listing with the error, retryable by a person, and audited. Nothing else waits on a join code."""
    row = tx.execute(
        "SELECT id, payload FROM outbox WHERE provider_id = ? AND kind = 'verify'", (sid,)
    ).fetchone()  # fmt: skip
    if row is None:
        return None
    work_id, asked = int(row[0]), json.loads(row[1])
    agent_id, channel = str(asked["agent_id"]), str(asked["channel"])
    moved = False
    if status == "failed":
        failed = tx.execute(
            "UPDATE outbox SET status = 'failed', last_error = ?, updated_at = ? WHERE id = ? AND status = 'sent'",
            (error or "failed", at, work_id),
        )
        moved = failed.rowcount > 0
    if moved:
        audit.insert_audit(
            tx,
            kind="delivery_failed",
            at=at,
            agent_id=agent_id,
            action_origin="user_directed",
            policy_gate_result="allowed",
            reason=f"Twilio reported the join code was not delivered on {channel}",
            detail={"via": channel, "outbox": work_id, "what": "verify", "error": error},
        )
    if opted_out:
        directory.set_opted_out(tx, agent_id, channel, True, at)
    return Reported("join_code", work_id, channel, moved)
