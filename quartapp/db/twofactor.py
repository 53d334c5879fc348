"""The tables of the second factor: a TOTP key, recovery codes, and half-done logins.

Models of :mod:`quartapp.twofactor`, re-exported by :mod:`quartapp.db`; migration 0006
creates them. Times are Unix seconds, as on ``logins``.
"""

from __future__ import annotations

from sqlalchemy import Boolean, Float, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from .models import Base

__all__ = ["PendingLogin", "RecoveryCode", "TotpFactor"]


class TotpFactor(Base):
    """A user's TOTP key: pending until a code from it was entered, then in force.

    The key stays on the server from the moment it is made, so neither the QR code's
    URL nor a form carries it. ``last_timecode`` is the time step of the last code
    accepted, and only later steps are accepted after it, by one conditional UPDATE: a
    code works once, whichever process or instance sees it again.
    """

    __tablename__ = "totp_factors"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    # Base32, as authenticator apps take it (pyotp.random_base32: 160 bits).
    secret: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[float] = mapped_column(Float)
    # NULL while enrolment waits for its first code.
    confirmed_at: Mapped[float | None] = mapped_column(Float)
    last_timecode: Mapped[int | None] = mapped_column(Integer)


class RecoveryCode(Base):
    """One recovery code, stored as its SHA-256 only; ``used_at`` is set when it is spent.

    The codes carry 120 bits from ``secrets`` (see quartapp.twofactor.recovery), so a
    fast hash is enough (ASVS 6.5.2): a stolen table gives nothing to brute-force.
    """

    __tablename__ = "recovery_codes"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[float] = mapped_column(Float)
    used_at: Mapped[float | None] = mapped_column(Float)


class PendingLogin(Base):
    """A login whose password was right and whose second factor is still to come.

    The browser's session cookie holds a random token, the row its SHA-256; the row
    lives ``twofactor.login.PENDING_LIFETIME`` seconds and is deleted when used, so it
    completes one login at most, in that browser only.
    """

    __tablename__ = "pending_logins"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    remember: Mapped[bool] = mapped_column(Boolean, default=False)
    expires_at: Mapped[float] = mapped_column(Float, index=True)
