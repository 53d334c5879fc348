"""Second-factor hardening: pending keys bound to a login, strong proofs, wrong codes.

- ``totp_factors.login_id``: the login that made a pending key; no other may see or
  confirm it. Pending keys made before this revision belong to no login, so they go.
- ``totp_factors.misses`` and ``wait_until``: wrong codes in a row, and when the next
  TOTP code may be tried.
- ``logins.verified_method``: how the login's last proof was made (a second factor or
  a passkey makes it strong). Older logins have none, so they count as not strong.
- ``second_factor_failures``: the latest wrong codes of each user, for the owner to see.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("DELETE FROM totp_factors WHERE confirmed_at IS NULL")
    with op.batch_alter_table("totp_factors") as batch:
        batch.add_column(sa.Column("login_id", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("misses", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("wait_until", sa.Float(), nullable=True))
    with op.batch_alter_table("logins") as batch:
        batch.add_column(sa.Column("verified_method", sa.String(length=32), nullable=True))
    op.create_table(
        "second_factor_failures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("address", sa.String(length=45), nullable=True),
        sa.Column("user_agent", sa.String(length=255), nullable=True),
        sa.Column("step", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("second_factor_failures") as batch:
        batch.create_index("ix_second_factor_failures_user_id", ["user_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("second_factor_failures") as batch:
        batch.drop_index("ix_second_factor_failures_user_id")
    op.drop_table("second_factor_failures")
    with op.batch_alter_table("logins") as batch:
        batch.drop_column("verified_method")
    with op.batch_alter_table("totp_factors") as batch:
        batch.drop_column("wait_until")
        batch.drop_column("misses")
        batch.drop_column("login_id")
