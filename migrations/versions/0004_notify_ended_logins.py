"""PostgreSQL tells every process which logins ended, for their login caches.

Triggers on ``logins`` send ``NOTIFY quartapp_logins`` in the transaction that makes
the change, so each serving process drops those rows from its cache when (and only
if) the change commits (see quartapp/login_listener.py):

- a DELETE (logout, ending a session, a password change, a deleted user, expiry,
  pruning) sends the ended ids;
- an UPDATE sends the ids whose user, "remember me" or expiry changed, or whose
  ``last_seen`` went back; the app's own once-a-minute ``last_seen`` write moves it
  forward and sends nothing, so it empties no cache;
- a TRUNCATE sends ``*``: forget everything.

A notification's payload is limited to 8000 bytes: ids go 100 to a notification
(6,500 bytes at most), and more than 1,000 at once become a single ``*``.

SQLite has no NOTIFY; its processes watch ``PRAGMA data_version`` instead, so this
revision changes nothing there.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# One statement each: asyncpg prepares what it runs, and a prepared statement holds one.
UPGRADE = [
    """
CREATE FUNCTION quartapp_notify_logins(ids text[]) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF coalesce(cardinality(ids), 0) = 0 THEN
        RETURN;
    END IF;
    IF cardinality(ids) > 1000 THEN
        PERFORM pg_notify('quartapp_logins', '*');
        RETURN;
    END IF;
    FOR start_at IN 1 .. cardinality(ids) BY 100 LOOP
        PERFORM pg_notify('quartapp_logins', array_to_string(ids[start_at : start_at + 99], ','));
    END LOOP;
END
$$
""",
    """
CREATE FUNCTION quartapp_logins_deleted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM quartapp_notify_logins(ARRAY(SELECT id FROM ended));
    RETURN NULL;
END
$$
""",
    """
CREATE FUNCTION quartapp_logins_updated() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM quartapp_notify_logins(ARRAY(
        SELECT o.id FROM ended o LEFT JOIN kept n ON n.id = o.id
        WHERE n.id IS NULL
           OR n.user_id <> o.user_id
           OR n.remember <> o.remember
           OR n.expires_at <> o.expires_at
           OR n.last_seen < o.last_seen
    ));
    RETURN NULL;
END
$$
""",
    """
CREATE FUNCTION quartapp_logins_truncated() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('quartapp_logins', '*');
    RETURN NULL;
END
$$
""",
    """
CREATE TRIGGER quartapp_logins_deleted AFTER DELETE ON logins
    REFERENCING OLD TABLE AS ended
    FOR EACH STATEMENT EXECUTE FUNCTION quartapp_logins_deleted()
""",
    """
CREATE TRIGGER quartapp_logins_updated AFTER UPDATE ON logins
    REFERENCING OLD TABLE AS ended NEW TABLE AS kept
    FOR EACH STATEMENT EXECUTE FUNCTION quartapp_logins_updated()
""",
    """
CREATE TRIGGER quartapp_logins_truncated AFTER TRUNCATE ON logins
    FOR EACH STATEMENT EXECUTE FUNCTION quartapp_logins_truncated()
""",
]

DOWNGRADE = [
    "DROP TRIGGER IF EXISTS quartapp_logins_truncated ON logins",
    "DROP TRIGGER IF EXISTS quartapp_logins_updated ON logins",
    "DROP TRIGGER IF EXISTS quartapp_logins_deleted ON logins",
    "DROP FUNCTION IF EXISTS quartapp_logins_truncated()",
    "DROP FUNCTION IF EXISTS quartapp_logins_updated()",
    "DROP FUNCTION IF EXISTS quartapp_logins_deleted()",
    "DROP FUNCTION IF EXISTS quartapp_notify_logins(text[])",
]


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for statement in UPGRADE:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for statement in DOWNGRADE:
            op.execute(statement)
