"""Device cookies with a server-side record, and one-time codes to trust a new device.

- ``devices``: one row per trusted browser, keyed by the SHA-256 of its cookie's nonce.
  Device cookies made before this revision named the user and had no row; they are
  ignored from now on, so their browsers count against the username until their next
  successful login mints a new one.
- ``device_codes``: the hashed, short-lived codes from the sessions page's "Trust a new
  device".

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "devices",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("last_used", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("devices") as batch:
        batch.create_index("ix_devices_user_id", ["user_id"], unique=False)
    op.create_table(
        "device_codes",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("device_codes") as batch:
        batch.create_index("ix_device_codes_user_id", ["user_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("device_codes") as batch:
        batch.drop_index("ix_device_codes_user_id")
    op.drop_table("device_codes")
    with op.batch_alter_table("devices") as batch:
        batch.drop_index("ix_devices_user_id")
    op.drop_table("devices")
