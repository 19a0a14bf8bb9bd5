"""The message a join code went out as (CONTRACT sections 6 and 8).

`outbox.provider_id`: the provider's id of the message a `verify` row (a join code) was sent
as, so that a status callback that says the message did not arrive after all (WhatsApp's
63016, outside the 24-hour session) fails that row, where an operator sees it and can retry
it, instead of leaving it `sent`. An invitation's message id stays on the invitation. Found by
`ix_outbox_provider_id`, a partial index that holds only the rows that have one.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

HAS_ID = "provider_id IS NOT NULL"


def upgrade() -> None:
    op.add_column("outbox", sa.Column("provider_id", sa.String(length=200), nullable=True))
    op.create_index(
        "ix_outbox_provider_id",
        "outbox",
        ["provider_id"],
        unique=False,
        sqlite_where=sa.text(HAS_ID),
        postgresql_where=sa.text(HAS_ID),
    )


def downgrade() -> None:
    op.drop_index("ix_outbox_provider_id", table_name="outbox")
    # plain ALTER TABLE … DROP COLUMN (SQLite 3.35+), as 0007 does: no batch copy of a busy table
    op.execute("ALTER TABLE outbox DROP COLUMN provider_id")
