"""Reply codes in use get their own table; the throttle count gets its own index.

Intake used to collect an agent's open reply codes by reading every invitation the agent
ever had, joined with its signal; `reply_code` holds only the codes of open loops, keyed
(agent, code), so a free code is found with point look-ups. It is filled here from the
open loops' coded invitations; where old data gave one agent the same code on two open
loops, the oldest invitation keeps it (the newer one still answers by its action link).

`ix_invitation_agent_invited` holds only invitations that were not skipped, which are
what the hourly throttle counts; the skipped rows a throttled agent gathers stay out of it.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

NOT_SKIPPED = "status <> 'skipped'"


def upgrade() -> None:
    op.create_table(
        "reply_code",
        sa.Column("agent_id", sa.String(length=100), nullable=False),
        sa.Column("code", sa.String(length=8), nullable=False),
        sa.Column("signal_id", sa.Integer(), nullable=False),
        sa.Column("invitation_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["invitation_id"], ["invitation.id"]),
        sa.ForeignKeyConstraint(["signal_id"], ["signal.id"]),
        sa.PrimaryKeyConstraint("agent_id", "code"),
    )
    with op.batch_alter_table("reply_code", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_reply_code_signal_id"), ["signal_id"], unique=False)
    op.get_bind().execute(
        sa.text(
            "INSERT INTO reply_code (agent_id, code, signal_id, invitation_id)"
            " SELECT i.agent_id, i.code, i.signal_id, i.id FROM invitation i JOIN ("
            " SELECT o.agent_id, o.code, MIN(o.id) AS first_id FROM invitation o JOIN signal s ON s.id = o.signal_id"
            " WHERE o.code IS NOT NULL AND s.status IN ('invited', 'acked') GROUP BY o.agent_id, o.code"
            ") AS oldest ON oldest.first_id = i.id"
        )
    )
    op.create_index(
        "ix_invitation_agent_invited",
        "invitation",
        ["agent_id", "created_at"],
        unique=False,
        sqlite_where=sa.text(NOT_SKIPPED),
        postgresql_where=sa.text(NOT_SKIPPED),
    )


def downgrade() -> None:
    op.drop_index("ix_invitation_agent_invited", table_name="invitation")
    with op.batch_alter_table("reply_code", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_reply_code_signal_id"))
    op.drop_table("reply_code")
