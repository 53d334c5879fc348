"""Accounts: usernames, the password policy, and the operations on users.

Functions take an open ``AsyncSession`` and commit their own work, so a view and a
CLI command doing the same thing run the same code. What changes who may log in (a new
password, a deleted account) is a flow of :mod:`.flows`, which ends the user's logins
and forgets their trusted devices in the same transaction.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from ..db import utcnow
from . import ratings, throttle
from .models import Device, ThrottleCounter, User
from .passwords import Passwords
from .settings import AuthSettings

# Lower-case letters, digits and a few separators: no look-alike Unicode, no spaces that
# would make two accounts look the same on screen.
USERNAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9._@-]*")
# Words that belong to this site, fed to zxcvbn with the username.
SITE_WORDS = ("quartapp",)


class AccountError(Exception):
    """An account operation was refused; the message is one line for the user."""


def normalize_username(name: str) -> str:
    """The stored form of a username: usernames are case-insensitive."""
    return name.lower()


def check_username(name: str, config: AuthSettings) -> str:
    """Validate a new username and return its stored form."""
    normalized = normalize_username(name)
    limit = config.username_max_length
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


def check_length(password: str, config: AuthSettings) -> None:
    """The policy's cheap part: a new password's length (it is never stripped or truncated)."""
    shortest, longest = config.password_min_length, config.password_max_length
    # The login form's DataRequired refuses an all-space password, so none is created.
    if not password.strip():
        raise AccountError("the password is empty")
    if len(password) < shortest:
        raise AccountError(f"the password is shorter than {shortest} characters")
    if len(password) > longest:
        raise AccountError(f"the password is longer than {longest} characters")


def check_password(password: str, config: AuthSettings, *, username: str | None = None) -> None:
    """Apply the policy to a new password: its length, then how guessable it is.

    zxcvbn rates it with the username and the site's name as words an attacker would
    try. A rating takes milliseconds of CPU: call :func:`vet_password` on an event loop.
    """
    check_length(password, config)
    minimum = config.password_min_score
    if not minimum:
        return
    inputs = [*SITE_WORDS, *([username] if username else [])]
    score, feedback = ratings.rate(password, inputs)
    if score < minimum:
        reason = feedback["warning"] or next(iter(feedback["suggestions"]), "")
        reason = reason or "Add another word or two; uncommon words are better."
        raise AccountError(f"the password is too easy to guess: {reason}")


async def vet_password(
    password: str, config: AuthSettings, *, username: str | None = None
) -> None:
    """:func:`check_password` off the event loop, one rating at a time per process.

    The length is checked first, on the loop (it costs nothing). Past the ratings'
    short line this raises :class:`~.ratings.RatingBusy` (a 503) at once.
    """
    check_length(password, config)
    if config.password_min_score:
        await ratings.bounded(check_password, password, config, username=username)


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


async def available_username(session: AsyncSession, config: AuthSettings, name: str) -> str:
    """The stored form of a new username; AccountError if it is invalid or taken."""
    username = check_username(name, config)
    if await find_user(session, username) is not None:
        raise AccountError(f"a user named {username!r} already exists")
    return username


async def create_user(
    session: AsyncSession,
    passwords: Passwords,
    config: AuthSettings,
    name: str,
    password: str,
) -> User:
    """Create an account; AccountError if the name is taken or a policy is broken."""
    username = await available_username(session, config, name)
    await vet_password(password, config, username=username)
    user = User(username=username, password_hash=await passwords.hash(password))
    session.add(user)
    try:
        await session.commit()
    except IntegrityError:
        # Another process created the same name between our check and our insert.
        await session.rollback()
        raise AccountError(f"a user named {username!r} already exists") from None
    return user


async def unlock(session: AsyncSession, name: str) -> int:
    """Lift a lockout of a username: its throttle count and its devices' (commits).

    For an owner who has no trusted device (see docs/security.md, Throttling). The counts of
    addresses stay: an admin cannot tell a stranger's address from the owner's.
    Returns how many counters were deleted.
    """
    user = await get_user(session, name)
    cleared = await clear_counters(session, user.id, user.username)
    await session.commit()
    return cleared


async def clear_counters(session: AsyncSession, user_id: int, username: str) -> int:
    """Delete the throttle counters of a username and of its devices (no commit); how many."""
    own_devices = select(Device.id).where(Device.user_id == user_id)
    result = await session.execute(
        delete(ThrottleCounter).where(
            or_(
                and_(
                    ThrottleCounter.scope == throttle.USER,
                    ThrottleCounter.key == username[: throttle.KEY_LENGTH],
                ),
                and_(
                    ThrottleCounter.scope == throttle.DEVICE,
                    ThrottleCounter.key.in_(own_devices),
                ),
            )
        )
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def store_password_hash(session: AsyncSession, user_id: int, password_hash: str) -> None:
    """Replace a user's password hash (no commit): the caller ends the logins with it.

    Also when it changed, for the account's overview (a rehash at login is no change).
    """
    await session.execute(
        update(User)
        .where(User.id == user_id)
        .values(password_hash=password_hash, password_changed_at=utcnow())
    )


async def store_rehash(session: AsyncSession, user_id: int, new_hash: str) -> None:
    """Keep a hash upgraded to the current parameters at a successful login (no commit).

    Only possible then, while the plain password is at hand.
    """
    await session.execute(update(User).where(User.id == user_id).values(password_hash=new_hash))
