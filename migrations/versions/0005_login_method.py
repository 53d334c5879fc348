"""How each login was made, and when its user last proved who they are.

- ``logins.method``: ``password``, ``password+totp``, ``password+recovery-code`` or
  ``passkey``, for the sessions page. Existing logins were all made with a password.
- ``logins.verified_at``: Unix seconds of the login itself, or of the last
  re-authentication in it (``auth.reauth``): adding or removing a second factor asks
  for a fresh one. NULL for logins made before this revision, which count as stale.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("logins") as batch:
        batch.add_column(
            sa.Column("method", sa.String(length=32), nullable=False, server_default="password")
        )
        batch.add_column(sa.Column("verified_at", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("logins") as batch:
        batch.drop_column("verified_at")
        batch.drop_column("method")
