"""Second factors: TOTP keys, recovery codes and logins waiting for their second step.

- ``totp_factors``: one per user, pending (``confirmed_at`` NULL) until a first code
  is entered; ``last_timecode`` makes each code work once.
- ``recovery_codes``: SHA-256 of each code, and when it was used.
- ``pending_logins``: a right password waiting for its code, keyed by the SHA-256 of
  a token in that browser's session cookie, for 5 minutes.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "totp_factors",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("secret", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("confirmed_at", sa.Float(), nullable=True),
        sa.Column("last_timecode", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("user_id"),
    )
    op.create_table(
        "recovery_codes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("used_at", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("code_hash"),
    )
    with op.batch_alter_table("recovery_codes") as batch:
        batch.create_index("ix_recovery_codes_user_id", ["user_id"], unique=False)
    op.create_table(
        "pending_logins",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("remember", sa.Boolean(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("pending_logins") as batch:
        batch.create_index("ix_pending_logins_user_id", ["user_id"], unique=False)
        batch.create_index("ix_pending_logins_expires_at", ["expires_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("pending_logins") as batch:
        batch.drop_index("ix_pending_logins_expires_at")
        batch.drop_index("ix_pending_logins_user_id")
    op.drop_table("pending_logins")
    with op.batch_alter_table("recovery_codes") as batch:
        batch.drop_index("ix_recovery_codes_user_id")
    op.drop_table("recovery_codes")
    op.drop_table("totp_factors")
