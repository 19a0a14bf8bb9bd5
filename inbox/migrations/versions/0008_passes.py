"""An agent's "not now" on a loop (CONTRACT section 10).

`loop_pass`: one row per agent who passed on a loop, kept once (the primary key is the
loop and the agent). A pass changes nothing else: the loop's status does not move and
nothing is sent. Shown in the status document as `passes`.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "loop_pass",
        sa.Column("signal_id", sa.Integer(), nullable=False),
        sa.Column("agent_id", sa.String(length=100), nullable=False),
        sa.Column("via", sa.String(length=16), nullable=False),
        sa.Column("at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["signal_id"], ["signal.id"]),
        sa.PrimaryKeyConstraint("signal_id", "agent_id"),
    )


def downgrade() -> None:
    op.drop_table("loop_pass")
