"""The table of :mod:`quartapp.signup`: which accounts were made at ``/register``.

Migration 0010 creates it. An account with a row whose ``confirmed_at`` is NULL was
made by a stranger and has not proved its address yet: ``login_required`` pages refuse
it, and the prune deletes it after ``UNCONFIRMED_ACCOUNT_DAYS``. Accounts an admin
makes have no row, and are never held. Times are Unix seconds, as on ``logins``.
"""

from __future__ import annotations

from sqlalchemy import Float, ForeignKey
from sqlalchemy.orm import Mapped, mapped_column

from ..db import Base

__all__ = ["Registration"]


class Registration(Base):
    """An account made at ``/register``, and when its address was confirmed (or NULL)."""

    __tablename__ = "registrations"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    created_at: Mapped[float] = mapped_column(Float, index=True)
    confirmed_at: Mapped[float | None] = mapped_column(Float)
