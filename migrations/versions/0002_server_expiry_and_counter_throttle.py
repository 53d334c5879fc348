"""Expiry on the server, what the sessions page shows, and a throttle that holds.

- ``logins`` gains ``expires_at`` and ``last_seen`` (Unix seconds), so the server
  refuses an expired login whatever its cookie says, plus the client ``address`` and
  ``user_agent`` for the account's sessions page. Existing rows get the default
  limits (30 days when remembered, else 12 hours from their start).
- ``login_failures`` (a row per failure, counted after hashing) becomes
  ``throttle_counters`` (a row per key, counted atomically before hashing). Counts in
  flight at the deploy are dropped, which at worst gives a guesser a fresh window once.
- ``users.username`` widens to 255 characters, the most ``USERNAME_MAX_LENGTH`` allows.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

REMEMBERED, SESSION = 30 * 86400, 12 * 3600


def upgrade() -> None:
    with op.batch_alter_table("logins") as batch:
        batch.add_column(sa.Column("expires_at", sa.Float(), nullable=True))
        batch.add_column(sa.Column("last_seen", sa.Float(), nullable=True))
        batch.add_column(sa.Column("address", sa.String(length=45), nullable=True))
        batch.add_column(sa.Column("user_agent", sa.String(length=255), nullable=True))
    _backfill_logins()
    with op.batch_alter_table("logins") as batch:
        batch.alter_column("expires_at", existing_type=sa.Float(), nullable=False)
        batch.alter_column("last_seen", existing_type=sa.Float(), nullable=False)
        batch.create_index("ix_logins_expires_at", ["expires_at"], unique=False)

    with op.batch_alter_table("login_failures") as batch:
        batch.drop_index("ix_login_failures_scope_key_at")
        batch.drop_index("ix_login_failures_failed_at")
    op.drop_table("login_failures")
    op.create_table(
        "throttle_counters",
        sa.Column("scope", sa.String(length=8), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("window_end", sa.Float(), nullable=False),
        sa.Column("strikes", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("scope", "key"),
    )
    with op.batch_alter_table("throttle_counters") as batch:
        batch.create_index("ix_throttle_counters_window_end", ["window_end"], unique=False)

    with op.batch_alter_table("users") as batch:
        batch.alter_column(
            "username", existing_type=sa.String(length=64), type_=sa.String(length=255)
        )


def _backfill_logins() -> None:
    logins = sa.table(
        "logins",
        sa.column("id", sa.String()),
        sa.column("remember", sa.Boolean()),
        sa.column("created_at", sa.DateTime(timezone=True)),
        sa.column("expires_at", sa.Float()),
        sa.column("last_seen", sa.Float()),
    )
    connection = op.get_bind()
    now = time.time()
    rows = connection.execute(sa.select(logins.c.id, logins.c.remember, logins.c.created_at))
    for login_id, remember, created_at in rows.all():
        if created_at.tzinfo is None:  # SQLite hands back naive UTC
            created_at = created_at.replace(tzinfo=UTC)
        started = created_at.timestamp() if isinstance(created_at, datetime) else now
        connection.execute(
            logins.update()
            .where(logins.c.id == login_id)
            .values(
                expires_at=started + (REMEMBERED if remember else SESSION),
                last_seen=now,
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.alter_column(
            "username", existing_type=sa.String(length=255), type_=sa.String(length=64)
        )

    with op.batch_alter_table("throttle_counters") as batch:
        batch.drop_index("ix_throttle_counters_window_end")
    op.drop_table("throttle_counters")
    op.create_table(
        "login_failures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("scope", sa.String(length=8), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("failed_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("login_failures") as batch:
        batch.create_index("ix_login_failures_failed_at", ["failed_at"], unique=False)
        batch.create_index(
            "ix_login_failures_scope_key_at", ["scope", "key", "failed_at"], unique=False
        )

    with op.batch_alter_table("logins") as batch:
        batch.drop_index("ix_logins_expires_at")
        batch.drop_column("user_agent")
        batch.drop_column("address")
        batch.drop_column("last_seen")
        batch.drop_column("expires_at")
