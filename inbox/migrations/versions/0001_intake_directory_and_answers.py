"""Intake, directory and answers: the first schema.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "agent",
        sa.Column("id", sa.String(length=100), nullable=False),
        sa.Column("display", sa.String(length=200), nullable=False),
        sa.Column("group_ids", sa.Text(), nullable=False),
        sa.Column("slack_user", sa.String(length=64), nullable=True),
        sa.Column("phone", sa.String(length=20), nullable=True),
        sa.Column("whatsapp", sa.String(length=20), nullable=True),
        sa.Column("channels", sa.Text(), nullable=False),
        sa.Column("quiet_hours", sa.String(length=11), nullable=True),
        sa.Column("tz", sa.String(length=64), nullable=True),
        sa.Column("active", sa.Integer(), nullable=False),
        sa.Column("opted_out", sa.Text(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("agent", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_agent_phone"), ["phone"], unique=True)
        batch_op.create_index(batch_op.f("ix_agent_slack_user"), ["slack_user"], unique=True)
        batch_op.create_index(batch_op.f("ix_agent_whatsapp"), ["whatsapp"], unique=True)

    op.create_table(
        "audit",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=True),
        sa.Column("event_id", sa.String(length=200), nullable=True),
        sa.Column("agent_id", sa.String(length=100), nullable=True),
        sa.Column("action_origin", sa.String(length=32), nullable=False),
        sa.Column("policy_gate_result", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("gate_failures", sa.Text(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("audit", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_at"), ["at"], unique=False)

    op.create_table(
        "consent_grant",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("subject", sa.String(length=240), nullable=False),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("group_ids", sa.Text(), nullable=False),
        sa.Column("channels", sa.Text(), nullable=False),
        sa.Column("min_confidence", sa.String(length=8), nullable=True),
        sa.Column("expires_at", sa.BigInteger(), nullable=True),
        sa.Column("granted_by", sa.String(length=100), nullable=False),
        sa.Column("granted_at", sa.BigInteger(), nullable=False),
        sa.Column("revoked_at", sa.BigInteger(), nullable=True),
        sa.Column("revoked_by", sa.String(length=100), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("consent_grant", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_consent_grant_subject"), ["subject"], unique=False)

    op.create_table(
        "directory_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("ref_id", sa.Integer(), nullable=True),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.BigInteger(), nullable=False),
        sa.Column("lease_until", sa.BigInteger(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index("ix_outbox_due", ["status", "next_attempt_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_outbox_ref_id"), ["ref_id"], unique=False)

    op.create_table(
        "seen_nonce",
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("nonce", sa.String(length=200), nullable=False),
        sa.Column("event_id", sa.String(length=200), nullable=False),
        sa.Column("seen_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("source", "nonce"),
    )
    op.create_table(
        "signal",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("event_id", sa.String(length=200), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=240), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=True),
        sa.Column("body_sha256", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("action_origin", sa.String(length=32), nullable=False),
        sa.Column("origin_uncertain", sa.Integer(), nullable=False),
        sa.Column("policy_gate_result", sa.String(length=16), nullable=False),
        sa.Column("gate_failures", sa.Text(), nullable=False),
        sa.Column("received_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("source", "event_id", name="uq_signal_source_event"),
    )
    with op.batch_alter_table("signal", schema=None) as batch_op:
        batch_op.create_index("ix_signal_event_id", ["event_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_signal_received_at"), ["received_at"], unique=False)
        batch_op.create_index("ix_signal_status_id", ["status", "id"], unique=False)

    op.create_table(
        "ack",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("signal_id", sa.Integer(), nullable=False),
        sa.Column("agent_id", sa.String(length=100), nullable=False),
        sa.Column("action", sa.String(length=100), nullable=False),
        sa.Column("via", sa.String(length=16), nullable=False),
        sa.Column("at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["signal_id"],
            ["signal.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("signal_id", "agent_id", name="uq_ack_signal_agent"),
    )
    with op.batch_alter_table("ack", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ack_signal_id"), ["signal_id"], unique=False)

    op.create_table(
        "done",
        sa.Column("signal_id", sa.Integer(), nullable=False),
        sa.Column("agent_id", sa.String(length=100), nullable=False),
        sa.Column("outcome", sa.String(length=100), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("via", sa.String(length=16), nullable=False),
        sa.Column("at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["signal_id"],
            ["signal.id"],
        ),
        sa.PrimaryKeyConstraint("signal_id"),
    )
    op.create_table(
        "invitation",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("signal_id", sa.Integer(), nullable=False),
        sa.Column("agent_id", sa.String(length=100), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("code", sa.String(length=8), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("provider_id", sa.String(length=200), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["signal_id"],
            ["signal.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("signal_id", "agent_id", name="uq_invitation_signal_agent"),
    )
    with op.batch_alter_table("invitation", schema=None) as batch_op:
        batch_op.create_index("ix_invitation_agent_created", ["agent_id", "created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_invitation_provider_id"), ["provider_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_invitation_signal_id"), ["signal_id"], unique=False)

    op.bulk_insert(
        sa.table("directory_state", sa.column("id", sa.Integer), sa.column("version", sa.Integer)),
        [{"id": 1, "version": 0}],
    )


def downgrade() -> None:

    with op.batch_alter_table("invitation", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_invitation_signal_id"))
        batch_op.drop_index(batch_op.f("ix_invitation_provider_id"))
        batch_op.drop_index("ix_invitation_agent_created")

    op.drop_table("invitation")
    op.drop_table("done")
    with op.batch_alter_table("ack", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ack_signal_id"))

    op.drop_table("ack")
    with op.batch_alter_table("signal", schema=None) as batch_op:
        batch_op.drop_index("ix_signal_status_id")
        batch_op.drop_index(batch_op.f("ix_signal_received_at"))
        batch_op.drop_index("ix_signal_event_id")

    op.drop_table("signal")
    op.drop_table("seen_nonce")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_outbox_ref_id"))
        batch_op.drop_index("ix_outbox_due")

    op.drop_table("outbox")
    op.drop_table("directory_state")
    with op.batch_alter_table("consent_grant", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_consent_grant_subject"))

    op.drop_table("consent_grant")
    with op.batch_alter_table("audit", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_at"))

    op.drop_table("audit")
    with op.batch_alter_table("agent", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_agent_whatsapp"))
        batch_op.drop_index(batch_op.f("ix_agent_slack_user"))
        batch_op.drop_index(batch_op.f("ix_agent_phone"))

    op.drop_table("agent")
