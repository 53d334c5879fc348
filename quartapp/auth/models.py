"""The tables of sign-in: users, their logins, trusted devices and the throttle's counters.

On ``db.Base``, with the other features' tables (``<feature>/models.py``); migrations
0001-0005 and 0008 shape them, and tests/db/test_schema.py checks the two agree.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, Float, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from ..db import ADDRESS_COLUMN, USER_AGENT_COLUMN, USERNAME_COLUMN, Base, utcnow

__all__ = ["Device", "DeviceCode", "Login", "LoginChanges", "ThrottleCounter", "User"]


class User(Base):
    """An account. Usernames are stored lower-cased; passwords only as argon2id hashes."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    # USERNAME_MAX_LENGTH may be set up to this many characters.
    username: Mapped[str] = mapped_column(String(USERNAME_COLUMN), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # When the password was last replaced (the account page, a reset, `users
    # set-password`); NULL while it is the one the account was made with. A column, not
    # the newest "password changed" security event: those are pruned, this is not.
    password_changed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Login(Base):
    """The server-side record of one login, so a copied cookie dies at logout.

    The cookie carries a random token; the row keeps only its SHA-256, so a leaked
    database does not hand out live sessions. Expiry is decided here, not by the
    cookie: a re-signed old cookie finds its row expired or gone. Times are Unix
    seconds, which compare the same way on SQLite and PostgreSQL.
    """

    __tablename__ = "logins"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    remember: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # The absolute limit; the idle limit is counted from last_seen.
    expires_at: Mapped[float] = mapped_column(Float, index=True)
    # Written at most once a minute per login, so reads stay cheap.
    last_seen: Mapped[float] = mapped_column(Float)
    # What the account's sessions page shows about the device.
    address: Mapped[str | None] = mapped_column(String(ADDRESS_COLUMN))
    user_agent: Mapped[str | None] = mapped_column(String(USER_AGENT_COLUMN))
    # How the user proved who they are (auth's registry: login_methods), for the sessions page.
    method: Mapped[str] = mapped_column(String(32), default="password", server_default="password")
    # Unix seconds of the login, or of the last re-authentication within it (auth.reauth).
    verified_at: Mapped[float | None] = mapped_column(Float)
    # How that last proof was made: a login method (auth's registry) or a confirmation's
    # ("password", "password+code", "passkey"). NULL on logins older than migration 0008.
    verified_method: Mapped[str | None] = mapped_column(String(32))


class LoginChanges(Base):
    """One row counting the changes to ``logins`` that can end a cached login, on SQLite.

    Triggers (revision 0012) add one when a login row goes, or its user, "remember me",
    expiry or id change, or its ``last_seen`` goes back; never for a ``last_seen``
    moving forward or a new row. Each process's login cache reads it when the file's
    ``PRAGMA data_version`` moves, and empties itself only when this moved too
    (:mod:`.login_cache`). PostgreSQL's NOTIFY triggers (revision 0004) carry the same
    news, so the table exists there too but nothing writes it.
    """

    __tablename__ = "login_changes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    counter: Mapped[int] = mapped_column(Integer)


class ThrottleCounter(Base):
    """Login attempts in the current window for one key (a username, address or device).

    One row per key, updated by a single atomic upsert before any password is hashed,
    so parallel attempts queue on the row and none slips past the limit. ``strikes``
    counts windows in a row that ended locked, which lengthens the next one.
    """

    __tablename__ = "throttle_counters"

    scope: Mapped[str] = mapped_column(String(8), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    attempts: Mapped[int] = mapped_column(Integer)
    window_end: Mapped[float] = mapped_column(Float, index=True)
    strikes: Mapped[int] = mapped_column(Integer, default=0)


class Device(Base):
    """A browser trusted to log in as a user while strangers hold the username locked.

    The browser's device cookie carries a random nonce; the row keeps only its SHA-256,
    so a leaked database hands out no device cookies. A cookie is trusted only while
    its row exists: a password change, ``users revoke-sessions`` and deleting the user
    delete the rows, so a cookie minted under an old password is worth nothing. Times
    are Unix seconds, as on ``logins``.
    """

    __tablename__ = "devices"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    # Counted to cap how many devices a user mints per window.
    created_at: Mapped[float] = mapped_column(Float)
    # The least recently used row goes first when a user has too many.
    last_used: Mapped[float] = mapped_column(Float)


class DeviceCode(Base):
    """A one-time code that makes a new browser a trusted device of a logged-in user.

    Shown once on the user's sessions page and stored only as its SHA-256; it lives a
    few minutes, and a user has at most one at a time.
    """

    __tablename__ = "device_codes"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    expires_at: Mapped[float] = mapped_column(Float)
