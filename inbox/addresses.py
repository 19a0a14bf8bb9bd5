"""Addresses their owners confirmed (CONTRACT section 8): join codes, `agent.verified`, sessions.

An address (a Slack user, an SMS or a WhatsApp number) added to an agent, or changed, is
unconfirmed until its owner answers the code it was sent from it. The code is kept with
the address it was sent to: a code never confirms a number the agent has since changed.
Confirming or unconfirming moves the directory version (routing reads `verified`); the
WhatsApp session time does not (only a send reads it).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from enum import StrEnum

from inbox.audit import insert_audit
from inbox.directory import AgentRecord, get_agent_tx, replace_agent
from inbox.outbox import enqueue
from inbox.reply_codes import random_code
from inbox.tx import Tx

__all__ = [
    "ADDRESS_OF",
    "Confirmed",
    "address",
    "ask",
    "changed_channels",
    "confirm",
    "forget",
    "join_code",
    "unconfirm",
    "whatsapp_seen",
]

#: the agent field that holds each channel's address
ADDRESS_OF = {"slack": "slack_user", "sms": "phone", "whatsapp": "whatsapp"}


class Confirmed(StrEnum):
    """What a JOIN (or a Join press) did."""

    CONFIRMED = "confirmed"
    #: the address was confirmed before
    ALREADY = "already"
    #: not the code this address was sent (or none was sent to it)
    WRONG_CODE = "wrong_code"


def address(agent: AgentRecord, channel: str) -> str | None:
    """The agent's address on a channel (None for a channel without one)."""
    column = ADDRESS_OF.get(channel)
    return None if column is None else getattr(agent, column)


def changed_channels(before: AgentRecord | None, after: AgentRecord) -> list[str]:
    """The channels whose address is new or different (and set) in `after`."""
    return [
        channel
        for channel in ADDRESS_OF
        if address(after, channel) and (before is None or address(before, channel) != address(after, channel))
    ]


def forget(agent: AgentRecord, channels: Iterable[str]) -> AgentRecord:
    """The agent with these channels no longer confirmed (a new address is nobody's yet)."""
    gone = set(channels)
    return replace(agent, verified=tuple(c for c in agent.verified if c not in gone))


def ask(tx: Tx, agent: AgentRecord, channel: str, at: int) -> str:
    """A new join code for the agent's address on `channel`, and the message that carries it queued."""
    code = random_code()
    tx.execute("DELETE FROM join_code WHERE agent_id = ? AND channel = ?", (agent.id, channel))
    tx.execute(
        "INSERT INTO join_code (agent_id, channel, code, address, sent_at) VALUES (?, ?, ?, ?, ?)",
        (agent.id, channel, code, address(agent, channel) or "", at),
    )
    enqueue(tx, kind="verify", payload={"agent_id": agent.id, "channel": channel}, at=at)
    insert_audit(
        tx,
        kind="join_code_queued",
        at=at,
        agent_id=agent.id,
        action_origin="user_directed",
        policy_gate_result="allowed",
        reason=f"the agent's {channel} address is asked to confirm it is theirs",
        detail={"via": channel},
    )
    return code


def join_code(tx: Tx, agent_id: str, channel: str) -> tuple[str, str] | None:
    """(code, the address it was sent to) of an agent's unconfirmed address, or None."""
    row = tx.execute(
        "SELECT code, address FROM join_code WHERE agent_id = ? AND channel = ?", (agent_id, channel)
    ).fetchone()
    return None if row is None else (str(row[0]), str(row[1]))


def confirm(tx: Tx, agent_id: str, channel: str, code: str, at: int) -> Confirmed:
    """The owner answered `code` from the agent's address on `channel` (the row locked while judged,
    so a number changed at once on another replica is never confirmed, nor its change undone)."""
    agent = get_agent_tx(tx, agent_id, for_update=True)
    if agent is None or agent.removed_at is not None:
        return Confirmed.WRONG_CODE
    if channel in agent.verified:
        return Confirmed.ALREADY
    sent = join_code(tx, agent_id, channel)
    if sent is None or sent[0] != code.strip().upper() or sent[1] != address(agent, channel):
        _audit_join(tx, agent_id, channel, at, confirmed=False)
        return Confirmed.WRONG_CODE
    tx.execute("DELETE FROM join_code WHERE agent_id = ? AND channel = ?", (agent_id, channel))
    replace_agent(tx, replace(agent, verified=tuple(sorted({*agent.verified, channel}))), at)
    _audit_join(tx, agent_id, channel, at, confirmed=True)
    return Confirmed.CONFIRMED


def _audit_join(tx: Tx, agent_id: str, channel: str, at: int, *, confirmed: bool) -> None:
    insert_audit(
        tx,
        kind="address_confirmed" if confirmed else "address_not_confirmed",
        at=at,
        agent_id=agent_id,
        action_origin="user_directed",
        policy_gate_result="allowed" if confirmed else "blocked",
        reason=f"the owner of the {channel} address {'confirmed it' if confirmed else 'sent a code it was not sent'}",
        detail={"via": channel, "user_instruction": "join"},
    )


def unconfirm(tx: Tx, agent_id: str, channel: str, why: str, at: int) -> bool:
    """The provider says the address is not a usable one: it is no longer confirmed."""
    agent = get_agent_tx(tx, agent_id, for_update=True)
    if agent is None or channel not in agent.verified:
        return False
    replace_agent(tx, forget(agent, [channel]), at)
    insert_audit(
        tx,
        kind="address_unconfirmed",
        at=at,
        agent_id=agent_id,
        action_origin="care_autonomous",
        policy_gate_result="blocked",
        reason=f"the provider refused the {channel} address: {why}",
        detail={"via": channel},
    )
    return True


def whatsapp_seen(tx: Tx, agent_id: str, at: int) -> None:
    """The agent wrote on WhatsApp: their 24-hour session runs from now."""
    tx.execute(
        "UPDATE agent SET whatsapp_seen_at = ? WHERE id = ? AND (whatsapp_seen_at IS NULL OR whatsapp_seen_at < ?)",
        (at, agent_id, at),
    )
