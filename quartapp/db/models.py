"""The declarative base every feature's tables are on, and the sizes of shared columns.

Each feature keeps its tables in ``<feature>/models.py`` (sign-in's in
:mod:`quartapp.auth.models`); ``quartapp.load_models`` imports them all for what needs
the whole schema. ``migrations/`` carries them to existing databases
(:mod:`quartapp.db.schema`), and tests/db/test_schema.py checks that the two agree on
SQLite and PostgreSQL. A change to a table needs a new Alembic revision."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.orm import DeclarativeBase

__all__ = ["ADDRESS_COLUMN", "USERNAME_COLUMN", "USER_AGENT_COLUMN", "Base", "utcnow"]

# Column sizes; the settings that limit what goes in them are checked against these.
USERNAME_COLUMN = 255
ADDRESS_COLUMN = 45  # the longest IPv6 text form
USER_AGENT_COLUMN = 255


def utcnow() -> datetime:
    """The current time, timezone-aware, for row timestamps."""
    return datetime.now(UTC)


class Base(DeclarativeBase):
    """Declarative base of quartapp's tables."""
