"""Twilio inbound: messages kept once per MessageSid, and unknown-sender attempts.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "inbound_message",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("message_sid", sa.String(length=64), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("from_redacted", sa.String(length=32), nullable=False),
        sa.Column("at", sa.BigInteger(), nullable=False),
        sa.Column("outcome", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("message_sid", name="uq_inbound_message_sid"),
    )
    with op.batch_alter_table("inbound_message", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_inbound_message_at"), ["at"], unique=False)

    op.create_table(
        "verification_attempt",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("number_redacted", sa.String(length=32), nullable=False),
        sa.Column("number_hash", sa.String(length=64), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("at", sa.BigInteger(), nullable=False),
        sa.Column("outcome", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("verification_attempt", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_verification_attempt_at"), ["at"], unique=False)
        batch_op.create_index("ix_verification_attempt_number_at", ["number_hash", "at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("verification_attempt", schema=None) as batch_op:
        batch_op.drop_index("ix_verification_attempt_number_at")
        batch_op.drop_index(batch_op.f("ix_verification_attempt_at"))

    op.drop_table("verification_attempt")
    with op.batch_alter_table("inbound_message", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_inbound_message_at"))

    op.drop_table("inbound_message")
