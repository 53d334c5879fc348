"""Sign-up: which accounts were made at /register, and whether their address is confirmed.

- ``registrations``: one row per account made at ``/register`` (``confirmed_at`` NULL
  until its address is confirmed); accounts an admin makes have none.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "registrations",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("confirmed_at", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("user_id"),
    )
    with op.batch_alter_table("registrations") as batch:
        batch.create_index("ix_registrations_created_at", ["created_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("registrations") as batch:
        batch.drop_index("ix_registrations_created_at")
    op.drop_table("registrations")
