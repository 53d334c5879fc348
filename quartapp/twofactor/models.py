"""The tables of the second factor: a TOTP key, recovery codes, and half-done logins.

The tables of :mod:`quartapp.twofactor`, on ``db.Base``; migration 0006
creates them, 0008 binds a pending key to its login and counts wrong codes. Times are
Unix seconds, as on ``logins``.
"""

from __future__ import annotations

from sqlalchemy import Boolean, Float, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from ..db import ADDRESS_COLUMN, USER_AGENT_COLUMN, Base

__all__ = ["PendingLogin", "RecoveryCode", "SecondFactorFailure", "TotpFactor"]


class TotpFactor(Base):
    """A user's TOTP key: pending until a code from it was entered, then in force.

    The key stays on the server from the moment it is made, so neither the QR code's
    URL nor a form carries it. ``last_timecode`` is the time step of the last code
    accepted, and only later steps are accepted after it, by one conditional UPDATE: a
    code works once, whichever process or instance sees it again.

    A pending key belongs to the login that made it (``login_id``) and lives
    ``totp.PENDING_LIFETIME``: no other login is shown it or may confirm it. ``misses``
    counts wrong codes in a row, on every path, until one is right; ``wait_until`` is
    when the next TOTP code may be tried (:mod:`quartapp.twofactor.misses`).
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
    # The id (token digest) of the login that made the pending key; NULL once in force.
    login_id: Mapped[str | None] = mapped_column(String(64))
    misses: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    wait_until: Mapped[float | None] = mapped_column(Float)


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


class SecondFactorFailure(Base):
    """A wrong second-factor code, for its owner to see: when, from where, on which path.

    Only the latest ``twofactor.misses.KEPT`` rows of a user are kept.
    """

    __tablename__ = "second_factor_failures"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    at: Mapped[float] = mapped_column(Float)
    address: Mapped[str | None] = mapped_column(String(ADDRESS_COLUMN))
    user_agent: Mapped[str | None] = mapped_column(String(USER_AGENT_COLUMN))
    # "sign-in" (/login/two-factor) or "confirm" (/login/confirm).
    step: Mapped[str] = mapped_column(String(16))
