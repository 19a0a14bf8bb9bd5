"""Addresses their owners confirmed, join codes, and each agent's WhatsApp session.

`agent.verified` lists the channels (slack, sms, whatsapp) whose current address its owner
confirmed (CONTRACT section 8); `agent.whatsapp_seen_at` is the agent's last WhatsApp message
in, which opens their 24-hour session. `join_code` holds the code each unconfirmed address
was sent, one per (agent, channel), kept apart from the directory record so that no read of
an agent carries it.

The upgrade rule: an address that was already sent an invitation (one that reached the
provider: sent, delivered or read) counts as confirmed.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

#: the channel each address column belongs to
ADDRESSES = (("slack", "slack_user"), ("sms", "phone"), ("whatsapp", "whatsapp"))


def upgrade() -> None:
    with op.batch_alter_table("agent", schema=None) as batch_op:
        batch_op.add_column(sa.Column("verified", sa.Text(), nullable=False, server_default="[]"))
        batch_op.add_column(sa.Column("whatsapp_seen_at", sa.BigInteger(), nullable=True))
    op.create_table(
        "join_code",
        sa.Column("agent_id", sa.String(length=100), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("code", sa.String(length=16), nullable=False),
        sa.Column("address", sa.String(length=64), nullable=False),
        sa.Column("sent_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("agent_id", "channel"),
    )
    bind = op.get_bind()
    reached = bind.execute(
        sa.text("SELECT DISTINCT agent_id, channel FROM invitation WHERE status IN ('sent', 'delivered', 'read')")
    ).fetchall()
    confirmed: dict[str, set[str]] = {}
    for agent_id, channel in reached:
        confirmed.setdefault(str(agent_id), set()).add(str(channel))
    rows = bind.execute(
        sa.text("SELECT id, slack_user, phone, whatsapp FROM agent WHERE removed_at IS NULL")
    ).fetchall()
    for agent_id, *addresses in rows:
        channels = [
            channel
            for (channel, _), address in zip(ADDRESSES, addresses, strict=True)
            if address and channel in confirmed.get(str(agent_id), set())
        ]
        if channels:
            bind.execute(
                sa.text("UPDATE agent SET verified = :verified WHERE id = :id"),
                {"verified": json.dumps(channels), "id": agent_id},
            )


def downgrade() -> None:
    op.drop_table("join_code")
    with op.batch_alter_table("agent", schema=None) as batch_op:
        batch_op.drop_column("whatsapp_seen_at")
        batch_op.drop_column("verified")
