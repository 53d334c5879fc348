"""Passkeys: each user's WebAuthn credentials, and the challenges of ceremonies under way.

- ``passkeys``: one row per registered credential (its id, COSE public key, signature
  count, user handle, name, when added and last used).
- ``passkey_challenges``: a challenge handed out for a registration, sign-in or
  confirmation, keyed by its SHA-256; deleted when used, and pruned once expired.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "passkeys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("credential_id", sa.String(length=1364), nullable=False),
        sa.Column("public_key", sa.LargeBinary(), nullable=False),
        sa.Column("sign_count", sa.BigInteger(), nullable=False),
        sa.Column("user_handle", sa.LargeBinary(length=64), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("last_used", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("credential_id"),
    )
    with op.batch_alter_table("passkeys") as batch:
        batch.create_index("ix_passkeys_user_id", ["user_id"], unique=False)
    op.create_table(
        "passkey_challenges",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("purpose", sa.String(length=16), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.Column("user_handle", sa.LargeBinary(length=64), nullable=True),
        sa.Column("network", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("passkey_challenges") as batch:
        batch.create_index("ix_passkey_challenges_expires_at", ["expires_at"], unique=False)
        batch.create_index("ix_passkey_challenges_user_id", ["user_id"], unique=False)
        batch.create_index("ix_passkey_challenges_network", ["network"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("passkey_challenges") as batch:
        batch.drop_index("ix_passkey_challenges_network")
        batch.drop_index("ix_passkey_challenges_user_id")
        batch.drop_index("ix_passkey_challenges_expires_at")
    op.drop_table("passkey_challenges")
    with op.batch_alter_table("passkeys") as batch:
        batch.drop_index("ix_passkeys_user_id")
    op.drop_table("passkeys")
