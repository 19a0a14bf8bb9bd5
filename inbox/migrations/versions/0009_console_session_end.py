"""Console sessions ended by signing out (CONTRACT section 11).

`console_session_end`: one row per console session its admin signed out of. A session's
cookie is signed and lasts 8 hours; until then, a copy of it would still open the console
after sign-out. Every console request looks its session up here by primary key, so a
signed-out session ends on every replica at once. `until` is when the cookie would have
expired anyway: rows past it are purged (`ix_console_session_end_until`).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "console_session_end",
        sa.Column("session_id", sa.String(length=64), nullable=False),
        sa.Column("admin", sa.String(length=100), nullable=False),
        sa.Column("at", sa.BigInteger(), nullable=False),
        sa.Column("until", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("session_id"),
    )
    op.create_index("ix_console_session_end_until", "console_session_end", ["until"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_console_session_end_until", table_name="console_session_end")
    op.drop_table("console_session_end")
