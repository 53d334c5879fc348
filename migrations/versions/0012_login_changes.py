"""SQLite counts the changes that can end a cached login, so other writes empty no cache.

- ``login_changes``: one row, ``counter``, bumped by triggers on ``logins`` when a row
  is deleted (logout, ending a session, a password change, a deleted user through its
  cascade, expiry, pruning) or updated in a way that can end or change a cached login:
  its id, user, "remember me" or expiry, or ``last_seen`` going back. ``last_seen``
  moving forward (the app's batched write) and new rows (a new id, which no cache
  holds) bump nothing.

Each process's login cache watches ``PRAGMA data_version``, which moves on any commit
to the file; it reads the counter only then, and empties itself only when the counter
moved too (quartapp/auth/login_cache.py). PostgreSQL tells the caches through the
NOTIFY triggers of revision 0004: there the table is created, empty of triggers.

A later revision that rebuilds ``logins`` in batch mode on SQLite drops these
triggers with the old table: it must create them again.

Revision ID: 0012
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

BUMP = "UPDATE login_changes SET counter = counter + 1 WHERE id = 1;"
SQLITE_UPGRADE = [
    f"""
CREATE TRIGGER quartapp_login_changes_deleted AFTER DELETE ON logins
BEGIN
    {BUMP}
END
""",
    f"""
CREATE TRIGGER quartapp_login_changes_updated AFTER UPDATE ON logins
WHEN NEW.id IS NOT OLD.id
    OR NEW.user_id IS NOT OLD.user_id
    OR NEW.remember IS NOT OLD.remember
    OR NEW.expires_at IS NOT OLD.expires_at
    OR NEW.last_seen < OLD.last_seen
BEGIN
    {BUMP}
END
""",
]
SQLITE_DOWNGRADE = [
    "DROP TRIGGER IF EXISTS quartapp_login_changes_updated",
    "DROP TRIGGER IF EXISTS quartapp_login_changes_deleted",
]


def upgrade() -> None:
    changes = op.create_table(
        "login_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("counter", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.bulk_insert(changes, [{"id": 1, "counter": 0}])
    if op.get_bind().dialect.name == "sqlite":
        for statement in SQLITE_UPGRADE:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for statement in SQLITE_DOWNGRADE:
            op.execute(statement)
    op.drop_table("login_changes")
