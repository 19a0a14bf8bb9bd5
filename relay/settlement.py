"""What an outbox attempt's outcome is stored as: the row and its invitation, in one transaction.

A claimed row is settled sent, skipped, retried at a time the worker chose, or failed; an
invitation that one channel could not deliver is moved to the agent's next channel. Each
write is conditional on the claim (its id and attempt number), so a process whose lease
lapsed changes nothing. A failed invitation keeps what the provider said of the address (an
opt-out, a number that is not a mobile one); a skipped or moved one is audited on its loop.
"""

from __future__ import annotations

from inbox import addresses, directory, invitations
from inbox import outbox as rows
from inbox.audit import insert_audit
from inbox.tx import Tx
from relay.delivery import Delivery


def store_settlement(
    tx: Tx, work: rows.Work, invitation_id: int | None, delivery: Delivery, *, now: int, retry_at: int | None
) -> bool:
    """Settle a claimed row, and its invitation (`invitation_id`, None for other kinds): sent, skipped,
    retried at `retry_at`, or failed (no `retry_at`). False when the claim was no longer this
    process's; then nothing changes."""
    if invitation_id is not None and delivery.next_channel is not None:
        # the attempt on this channel is over; the invitation itself goes on, on the next channel
        if not rows.skip(tx, work, reason=f"{delivery.error}; invited on {delivery.next_channel}", now=now):
            return False
        _move(tx, work.kind, invitation_id, delivery, now)
    elif delivery.skipped is not None:
        if not rows.skip(tx, work, reason=delivery.skipped, now=now):
            return False
        if invitation_id is not None:
            rows.set_invitation(tx, invitation_id, status="skipped", error=delivery.skipped, now=now)
            _audit_skip(tx, invitation_id, delivery.skipped, now)
    elif delivery.ok:
        # a join code's message id, so a late "not delivered" (WhatsApp's 63016) can fail this row;
        # an invitation's is kept on the invitation
        provider_id = delivery.provider_id if work.kind == "verify" else None
        if not rows.finish(tx, work, now, provider_id=provider_id):
            return False
        if invitation_id is not None:
            rows.set_invitation(tx, invitation_id, status="sent", provider_id=delivery.provider_id, now=now)
    elif retry_at is not None:
        return rows.reschedule(tx, work, at=retry_at, error=delivery.error or "retry", now=now)
    else:
        return _fail(tx, work, invitation_id, delivery, now)
    return True


def _fail(tx: Tx, work: rows.Work, invitation_id: int | None, delivery: Delivery, now: int) -> bool:
    """The row failed for good; its invitation too, and what the provider said of the address is kept."""
    if not rows.fail(tx, work, error=delivery.error or "failed", now=now):
        return False
    if invitation_id is None:
        return True
    rows.set_invitation(tx, invitation_id, status="failed", error=delivery.error, now=now)
    held = invitations.holder_and_channel(tx, invitation_id)
    if held is not None and delivery.opted_out:
        directory.set_opted_out(tx, held[0], held[1], True, now)
    if held is not None and delivery.unverified:  # not a number, or not a mobile one: ask its owner again
        addresses.unconfirm(tx, held[0], held[1], delivery.error or "refused", now)
    return True


def _move(tx: Tx, kind: str, invitation_id: int, delivery: Delivery, now: int) -> None:
    """The invitation goes to the agent's next channel for the same signal, queued now, and audited."""
    to = str(delivery.next_channel)
    row = invitations.loop_of(tx, invitation_id)
    tx.execute(
        "UPDATE invitation SET channel = ?, status = 'queued', error = NULL, provider_id = NULL, updated_at = ?"
        " WHERE id = ?",
        (to, now, invitation_id),
    )
    # the same kind: a person's invitation stays one (never held back by the kill switch)
    rows.enqueue(tx, kind=kind, payload={"invitation_id": invitation_id}, at=now, ref_id=invitation_id)
    if row is not None:
        insert_audit(
            tx,
            kind="invitation_moved",
            at=now,
            source=str(row[0]),
            event_id=str(row[1]),
            agent_id=str(row[2]),
            action_origin="care_autonomous",
            policy_gate_result="allowed",
            reason=f"{row[3]} could not reach the agent ({delivery.error}); invited on {to} instead",
            detail={"from": str(row[3]), "to": to},
        )


def _audit_skip(tx: Tx, invitation_id: int, reason: str, now: int) -> None:
    """The audit row of an invitation a send-time check stopped, on its loop."""
    row = invitations.loop_of(tx, invitation_id)
    if row is None:
        return
    insert_audit(
        tx,
        kind="invitation_skipped",
        at=now,
        source=str(row[0]),
        event_id=str(row[1]),
        agent_id=str(row[2]),
        action_origin="care_autonomous",
        policy_gate_result="blocked",
        reason=f"checked again at send time: {reason}",
        gate_failures=(reason,),
        detail={"channel": str(row[3])},
    )
