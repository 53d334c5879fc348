"""The audit's table: each account's security events, for its owner to see.

``security_events`` keeps what happened to an account (signed in, password changed,
two-factor turned on...), when, from which address and which browser (a short summary
such as "Firefox on Linux", not the whole User-Agent). Never a password, code, key or
token. Migration 0011 creates it; rows older than ``events.RETENTION_DAYS`` are pruned,
and a deleted account's go with its row (``ON DELETE CASCADE``).
"""

from __future__ import annotations

from sqlalchemy import Float, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from ..db import ADDRESS_COLUMN, Base

__all__ = ["BROWSER_COLUMN", "KIND_COLUMN", "SecurityEvent"]

KIND_COLUMN = 32
BROWSER_COLUMN = 64  # web.display.browser_summary's longest is about 30


class SecurityEvent(Base):
    """One security event of one account. Times are Unix seconds, as on ``logins``."""

    __tablename__ = "security_events"
    # The overview reads one account's newest; the pruner, the oldest of all.
    __table_args__ = (Index("ix_security_events_user_id_at", "user_id", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    # What happened: one of events.TEXTS' keys.
    kind: Mapped[str] = mapped_column(String(KIND_COLUMN))
    at: Mapped[float] = mapped_column(Float, index=True)
    address: Mapped[str | None] = mapped_column(String(ADDRESS_COLUMN))
    browser: Mapped[str | None] = mapped_column(String(BROWSER_COLUMN))
