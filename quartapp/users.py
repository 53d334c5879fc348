"""Accounts and their logins: the operations the web views and the CLI share.

Functions take an open ``AsyncSession`` and commit their own work, so a view and a
CLI command doing the same thing run the same code.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import re
import secrets
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from quart import current_app
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from .db import Login, User, db
from .passwords import Passwords, passwords

log = logging.getLogger(__name__)

# Lower-case letters, digits and a few separators: no look-alike Unicode, no spaces that
# would make two accounts look the same on screen.
USERNAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9._@-]*")
INITIAL_ADMIN_FILE = "initial-admin-password"


class AccountError(Exception):
    """An account operation was refused; the message is one line for the user."""


def normalize_username(name: str) -> str:
    """The stored form of a username: usernames are case-insensitive."""
    return name.lower()


def check_username(name: str, config: Mapping[str, Any]) -> str:
    """Validate a new username and return its stored form."""
    normalized = normalize_username(name)
    limit = config["USERNAME_MAX_LENGTH"]
    if not normalized:
        raise AccountError("the username is empty")
    if len(normalized) > limit:
        raise AccountError(f"the username is longer than {limit} characters")
    if not USERNAME_PATTERN.fullmatch(normalized):
        raise AccountError(
            "the username may use only letters, digits and . _ @ -, and must start with a "
            "letter or digit"
        )
    return normalized


def check_password(password: str, config: Mapping[str, Any]) -> None:
    """Apply the length policy to a new password (it is never stripped or truncated)."""
    shortest, longest = config["PASSWORD_MIN_LENGTH"], config["PASSWORD_MAX_LENGTH"]
    # The login form's DataRequired refuses an all-space password, so none is created.
    if not password.strip():
        raise AccountError("the password is empty")
    if len(password) < shortest:
        raise AccountError(f"the password is shorter than {shortest} characters")
    if len(password) > longest:
        raise AccountError(f"the password is longer than {longest} characters")


async def find_user(session: AsyncSession, name: str) -> User | None:
    """The account called ``name``, whatever its case, or None."""
    query = select(User).where(User.username == normalize_username(name))
    return (await session.execute(query)).scalar_one_or_none()


async def get_user(session: AsyncSession, name: str) -> User:
    """The account called ``name``; AccountError if there is none."""
    user = await find_user(session, name)
    if user is None:
        raise AccountError(f"no user named {normalize_username(name)!r}")
    return user


async def list_users(session: AsyncSession) -> Sequence[User]:
    """Every account, by username."""
    return (await session.execute(select(User).order_by(User.username))).scalars().all()


async def count_users(session: AsyncSession) -> int:
    """How many accounts exist."""
    return (await session.execute(select(func.count()).select_from(User))).scalar_one()


async def available_username(session: AsyncSession, config: Mapping[str, Any], name: str) -> str:
    """The stored form of a new username; AccountError if it is invalid or taken."""
    username = check_username(name, config)
    if await find_user(session, username) is not None:
        raise AccountError(f"a user named {username!r} already exists")
    return username


async def create_user(
    session: AsyncSession,
    passwords: Passwords,
    config: Mapping[str, Any],
    name: str,
    password: str,
) -> User:
    """Create an account; AccountError if the name is taken or a policy is broken."""
    username = await available_username(session, config, name)
    check_password(password, config)
    user = User(username=username, password_hash=await passwords.hash(password))
    session.add(user)
    try:
        await session.commit()
    except IntegrityError:
        # Another process created the same name between our check and our insert.
        await session.rollback()
        raise AccountError(f"a user named {username!r} already exists") from None
    return user


async def set_password(
    session: AsyncSession,
    passwords: Passwords,
    config: Mapping[str, Any],
    name: str,
    password: str,
) -> int:
    """Change a password and end every login of that user; returns how many ended."""
    user = await get_user(session, name)
    check_password(password, config)
    user.password_hash = await passwords.hash(password)
    ended = await _delete_logins(session, user)
    await session.commit()
    return ended


async def delete_user(session: AsyncSession, name: str) -> None:
    """Delete an account and, with it, every one of its logins."""
    user = await get_user(session, name)
    # Deleted explicitly as well as by ON DELETE CASCADE, for databases where the
    # foreign key is not enforced.
    await _delete_logins(session, user)
    await session.delete(user)
    await session.commit()


async def revoke_logins(session: AsyncSession, name: str) -> int:
    """End every login of a user (all devices); returns how many ended."""
    user = await get_user(session, name)
    ended = await _delete_logins(session, user)
    await session.commit()
    return ended


async def _delete_logins(session: AsyncSession, user: User) -> int:
    result = await session.execute(delete(Login).where(Login.user_id == user.id))
    return int(getattr(result, "rowcount", 0) or 0)


async def authenticate(
    session: AsyncSession, passwords: Passwords, name: str, password: str
) -> User | None:
    """The user if ``password`` is theirs, else None, taking the same time either way.

    A hash made with older parameters is replaced by one with the current parameters,
    which is only possible now, while the plain password is at hand.
    """
    user = await find_user(session, name)
    # End the read before hashing, so the connection goes back to the pool: a burst of
    # logins waits here for the hashing bound and must not hold every connection.
    await session.commit()
    result = await passwords.verify(user.password_hash if user else None, password)
    if user is None or not result.ok:
        return None
    if result.new_hash is not None:
        user.password_hash = result.new_hash
        await session.commit()
    return user


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def start_login(session: AsyncSession, user: User, *, remember: bool) -> str:
    """Record a new login and return the token to keep in the session cookie."""
    token = secrets.token_urlsafe(32)
    session.add(Login(id=_digest(token), user_id=user.id, remember=remember))
    await session.commit()
    return token


async def end_login(session: AsyncSession, token: str) -> None:
    """Forget one login, so its cookie no longer logs anyone in."""
    await session.execute(delete(Login).where(Login.id == _digest(token)))
    await session.commit()


async def user_for_login(session: AsyncSession, token: str) -> User | None:
    """The user a session cookie's login token belongs to, if that login still exists."""
    query = select(User).join(Login, Login.user_id == User.id).where(Login.id == _digest(token))
    return (await session.execute(query)).scalar_one_or_none()


async def create_initial_admin(
    session: AsyncSession, passwords: Passwords, config: Mapping[str, Any]
) -> str | None:
    """On a development machine with no accounts, create ``admin`` with a random password.

    The password goes to ``<instance>/initial-admin-password`` (mode 0600) and to the
    log once, so a newcomer can log in right after ``make run``. Returns the password,
    or None when nothing was created.
    """
    if config["ENV"] != "development" or not config["INITIAL_ADMIN"]:
        return None
    if await count_users(session):
        return None
    password = secrets.token_urlsafe(18)
    try:
        await create_user(session, passwords, config, "admin", password)
    except AccountError:
        return None  # another worker got there first
    path = Path(config["INSTANCE_PATH"]) / INITIAL_ADMIN_FILE
    await asyncio.to_thread(_write_private, path, password + "\n")
    # The one place a password is logged, on purpose and in development only: it is
    # random, shown once, and a newcomer needs it to log in after `make run`.
    log.warning(
        "created user 'admin' with password %s (also in %s); change it with "
        "`.venv/bin/quart --app quartapp users set-password admin`",
        password,
        path,
    )
    return password


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    # O_CREAT's mode only applies to a new file; an old one keeps its mode otherwise.
    os.chmod(path, 0o600)


async def create_initial_admin_for_app() -> None:
    """``before_serving`` hook: the first-run admin, in the serving app's database."""
    async with db.session() as session:
        await create_initial_admin(session, passwords(), current_app.config)
