"""Away agents, one loop per moment, and invitations a person asked for (CONTRACT section 10).

`agent.away`: the agent said they are away (AWAY, `/care away`, the CLI, PATCH); routing
and the send-time check pass them over until they are back. Only a person changes it.

`signal.subject_key`: a hash of what a signal is about (M3: the source and the actor;
AiSHA: the tenant, entity type and entity id), so intake finds the open loop about the same
subject with one look-up on `ix_signal_open_subject`, a partial index that holds only the
open loops (invited or acked). `signal.joined_to`: the open loop a later signal about the
same subject joined (status `joined`); `ix_signal_joined_to` lists a loop's joined signals.
Signals stored before this revision have no key: they are never joined to.

`invitation.invited_by`: who asked for an invitation a person instructed ("admin:NAME" for
invite now); NULL for the invitations the relay decided on its own.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-20
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

#: the statuses of an open loop, as literals: SQLite uses a partial index only for a query
#: whose WHERE repeats them
OPEN = "status IN ('invited', 'acked')"
JOINED = "joined_to IS NOT NULL"


def upgrade() -> None:
    with op.batch_alter_table("agent", schema=None) as batch_op:
        batch_op.add_column(sa.Column("away", sa.Integer(), nullable=False, server_default="0"))
    with op.batch_alter_table("signal", schema=None) as batch_op:
        batch_op.add_column(sa.Column("subject_key", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("joined_to", sa.Integer(), nullable=True))
    with op.batch_alter_table("invitation", schema=None) as batch_op:
        batch_op.add_column(sa.Column("invited_by", sa.String(length=120), nullable=True))
    op.create_index(
        "ix_signal_open_subject",
        "signal",
        ["subject_key", "id"],
        unique=False,
        sqlite_where=sa.text(OPEN),
        postgresql_where=sa.text(OPEN),
    )
    op.create_index(
        "ix_signal_joined_to",
        "signal",
        ["joined_to", "id"],
        unique=False,
        sqlite_where=sa.text(JOINED),
        postgresql_where=sa.text(JOINED),
    )


def downgrade() -> None:
    op.drop_index("ix_signal_joined_to", table_name="signal")
    op.drop_index("ix_signal_open_subject", table_name="signal")
    # plain ALTER TABLE … DROP COLUMN (SQLite 3.35+ has it): a batch copy of `signal` or
    # `invitation` would drop a table other tables' foreign keys point at
    for table, column in (("invitation", "invited_by"), ("signal", "joined_to"), ("signal", "subject_key"),
                          ("agent", "away")):  # fmt: skip
        op.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
