"""Agent ids are never reused: removed agents stay as tombstones; grant ids up to 64 characters.

`agent.removed_at` marks a removed agent; its row (id and display) stays so that no later
person can take the id and inherit its invitations, links or loops (CONTRACT rule 2).
Agents removed before this revision were deleted outright: every id that invitations,
acks or dones still name gets a tombstone here, so those ids are taken too.

The grant id column grows to the 64 characters the admin API accepts (PostgreSQL enforces
the length; SQLite does not, so its table is left as it is).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30
"""

from __future__ import annotations

import time

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("agent", schema=None) as batch_op:
        batch_op.add_column(sa.Column("removed_at", sa.BigInteger(), nullable=True))
    now = int(time.time() * 1000)
    op.get_bind().execute(
        sa.text(
            "INSERT INTO agent (id, display, group_ids, channels, active, opted_out, created_at, updated_at, removed_at)"
            " SELECT named.agent_id, named.agent_id, '[]', '[]', 0, '[]', :now, :now, :now FROM ("
            " SELECT agent_id FROM invitation UNION SELECT agent_id FROM ack UNION SELECT agent_id FROM done"
            ") AS named WHERE named.agent_id NOT IN (SELECT id FROM agent)"
        ),
        {"now": now},
    )
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column("consent_grant", "id", type_=sa.String(length=64), existing_type=sa.String(length=40))


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column("consent_grant", "id", type_=sa.String(length=40), existing_type=sa.String(length=64))
    op.get_bind().execute(sa.text("DELETE FROM agent WHERE removed_at IS NOT NULL"))
    with op.batch_alter_table("agent", schema=None) as batch_op:
        batch_op.drop_column("removed_at")
