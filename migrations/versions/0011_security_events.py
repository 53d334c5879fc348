"""The account overview: each account's security events, and when its password changed.

- ``security_events``: one row per security event of an account (what, when, from which
  address and browser), pruned after ``audit.events.RETENTION_DAYS``;
- ``users.password_changed_at``: when the password was last replaced (NULL: never since
  the account was made).

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "security_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("address", sa.String(length=45), nullable=True),
        sa.Column("browser", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("security_events") as batch:
        batch.create_index("ix_security_events_at", ["at"], unique=False)
        batch.create_index("ix_security_events_user_id_at", ["user_id", "at"], unique=False)
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("password_changed_at", sa.DateTime(timezone=True)))


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("password_changed_at")
    with op.batch_alter_table("security_events") as batch:
        batch.drop_index("ix_security_events_user_id_at")
        batch.drop_index("ix_security_events_at")
    op.drop_table("security_events")
