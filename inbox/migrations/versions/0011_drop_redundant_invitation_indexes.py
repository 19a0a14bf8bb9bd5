"""Two invitation indexes nothing reads any more (CONTRACT section 6: a cost that does not grow).

`ix_invitation_agent_created` (agent, time) was the hourly throttle's until 0004 gave it
`ix_invitation_agent_invited`, the same columns without skipped rows; `ix_invitation_signal_id`
is the first column of the unique `(signal_id, agent_id)` constraint's own index, which serves
every look-up by signal. Each cost a write per invitation and pages of the database.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_invitation_agent_created", table_name="invitation")
    op.drop_index("ix_invitation_signal_id", table_name="invitation")


def downgrade() -> None:
    op.create_index("ix_invitation_signal_id", "invitation", ["signal_id"], unique=False)
    op.create_index("ix_invitation_agent_created", "invitation", ["agent_id", "created_at"], unique=False)
