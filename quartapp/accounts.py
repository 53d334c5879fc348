"""Accounts: usernames, the password policy, and the operations on users.

Functions take an open ``AsyncSession`` and commit their own work, so a view and a
CLI command doing the same thing run the same code. Anything that changes who may log
in (a new password, a deleted user) ends the user's logins in the same transaction.
"""

from __future__ import annotations

import asyncio
import re
import threading
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from zxcvbn import matching, time_estimates, zxcvbn

from . import logins
from .db import User
from .passwords import Busy, Passwords

# Lower-case letters, digits and a few separators: no look-alike Unicode, no spaces that
# would make two accounts look the same on screen.
USERNAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9._@-]*")
# What a rating may cost (README "Passwords" has the measurements). zxcvbn's time grows
# with the square of the length, times the number of l33t substitution tables it tries:
# one per way of reading the l33t characters present (4 and @ both as "a", 1 and | as
# "i" or "l", ...), 368 when all 18 of them appear. So only the first RATED_PREFIX
# characters are rated, in pieces of at most L33T_TABLES_MAX tables each: a piece ends
# where one more l33t character would exceed it. Measured worst case: about 15 ms.
RATED_PREFIX = 32
L33T_TABLES_MAX = 16
# Ratings waiting for the one running per process; past that, 503 at once.
RATING_QUEUE = 4
_L33T_CHARACTERS = frozenset(c for subs in matching.L33T_TABLE.values() for c in subs)
# zxcvbn keeps the user inputs of the call in a module-level dictionary while it runs,
# so two threads rating at once could see each other's usernames.
_RATING = threading.Lock()
# Words that belong to this site, fed to zxcvbn with the username.
SITE_WORDS = ("quartapp",)


class RatingBusy(Busy):
    """Too many password ratings are already waiting; try again shortly."""


@dataclass
class RatingGate:
    """One rating at a time on an event loop, and a bounded line for it.

    Waited for on the loop: callers queued on _RATING inside threads would hold the
    default executor's threads, which argon2 needs.
    """

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    # Places taken: the rating running now plus those waiting for it.
    taken: int = 0


@dataclass
class RatingCount:
    """How many ratings this process has started: what tests observe."""

    started: int = 0


_GATES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, RatingGate] = (
    weakref.WeakKeyDictionary()
)
RATINGS = RatingCount()


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


def check_length(password: str, config: Mapping[str, Any]) -> None:
    """The policy's cheap part: a new password's length (it is never stripped or truncated)."""
    shortest, longest = config["PASSWORD_MIN_LENGTH"], config["PASSWORD_MAX_LENGTH"]
    # The login form's DataRequired refuses an all-space password, so none is created.
    if not password.strip():
        raise AccountError("the password is empty")
    if len(password) < shortest:
        raise AccountError(f"the password is shorter than {shortest} characters")
    if len(password) > longest:
        raise AccountError(f"the password is longer than {longest} characters")


def check_password(
    password: str, config: Mapping[str, Any], *, username: str | None = None
) -> None:
    """Apply the policy to a new password: its length, then how guessable it is.

    zxcvbn rates it with the username and the site's name as words an attacker would
    try. A rating takes milliseconds of CPU: call :func:`vet_password` on an event loop.
    """
    check_length(password, config)
    minimum = config["PASSWORD_MIN_SCORE"]
    if not minimum:
        return
    inputs = [*SITE_WORDS, *([username] if username else [])]
    score, feedback = rate(password, inputs)
    if score < minimum:
        reason = feedback["warning"] or next(iter(feedback["suggestions"]), "")
        reason = reason or "Add another word or two; uncommon words are better."
        raise AccountError(f"the password is too easy to guess: {reason}")


def rated_pieces(password: str) -> list[str]:
    """The text zxcvbn rates: the first RATED_PREFIX characters, cut into pieces.

    A piece ends before the l33t character that would make zxcvbn try more than
    L33T_TABLES_MAX substitution tables, so no piece costs more than a plain rating of
    its length. Ordinary passwords, l33t ones included ("P@$$w0rd!" needs one table),
    are one piece.
    """
    prefix = password[:RATED_PREFIX]
    pieces: list[str] = []
    start = 0
    seen: set[str] = set()
    for index, character in enumerate(prefix):
        if character not in _L33T_CHARACTERS or character in seen:
            continue
        if l33t_tables("".join(seen) + character) > L33T_TABLES_MAX:
            pieces.append(prefix[start:index])
            start, seen = index, set()
        seen.add(character)
    pieces.append(prefix[start:])
    return pieces


def l33t_tables(text: str) -> int:
    """How many substitution tables zxcvbn's l33t matcher tries for ``text``."""
    table = matching.relevant_l33t_subtable(text, matching.L33T_TABLE)
    return len(matching.enumerate_l33t_subs(table))


def rate(password: str, inputs: Sequence[str]) -> tuple[int, dict[str, Any]]:
    """zxcvbn's score (0-4) for ``password`` and its feedback, at a bounded cost.

    Pieces (see :func:`rated_pieces`) are rated alone and their guesses multiplied, as
    zxcvbn multiplies the guesses of the parts it finds; the feedback is the weakest
    piece's.
    """
    with _RATING:
        RATINGS.started += 1
        results = [zxcvbn(piece, user_inputs=list(inputs)) for piece in rated_pieces(password)]
    if len(results) == 1:
        return int(results[0]["score"]), results[0]["feedback"]
    log10 = sum(float(result["guesses_log10"]) for result in results)
    weakest = min(results, key=lambda result: float(result["guesses_log10"]))
    return int(time_estimates.guesses_to_score(10**log10)), weakest["feedback"]


async def vet_password(
    password: str, config: Mapping[str, Any], *, username: str | None = None
) -> None:
    """:func:`check_password` off the event loop, one rating at a time per process.

    The length is checked first, on the loop (it costs nothing). At most RATING_QUEUE
    ratings wait for the running one; past that :class:`RatingBusy` (a 503) at once.
    """
    check_length(password, config)
    if not config["PASSWORD_MIN_SCORE"]:
        return
    gate = rating_gate()
    if gate.taken > RATING_QUEUE:
        raise RatingBusy("the password rating queue is full")
    gate.taken += 1
    try:
        async with gate.lock:
            await asyncio.to_thread(check_password, password, config, username=username)
    finally:
        gate.taken -= 1


def rating_gate() -> RatingGate:
    """The running event loop's rating gate (a process serves from one loop)."""
    return _GATES.setdefault(asyncio.get_running_loop(), RatingGate())


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


async def set_password(
    session: AsyncSession,
    passwords: Passwords,
    config: Mapping[str, Any],
    name: str,
    password: str,
) -> int:
    """Change a password and end every login of that user; returns how many ended."""
    user = await get_user(session, name)
    await vet_password(password, config, username=user.username)
    user.password_hash = await passwords.hash(password)
    ended = await logins.end_all(session, user.id)
    await session.commit()
    return ended


async def delete_user(session: AsyncSession, name: str) -> None:
    """Delete an account and, with it, every one of its logins."""
    user = await get_user(session, name)
    # Deleted explicitly as well as by ON DELETE CASCADE, for databases where the
    # foreign key is not enforced.
    await logins.end_all(session, user.id)
    await session.delete(user)
    await session.commit()


async def revoke_logins(session: AsyncSession, name: str) -> int:
    """End every login of a user (all devices); returns how many ended."""
    user = await get_user(session, name)
    ended = await logins.end_all(session, user.id)
    await session.commit()
    return ended


async def store_password_hash(session: AsyncSession, user_id: int, password_hash: str) -> None:
    """Replace a user's password hash (no commit): the caller ends the logins with it."""
    await session.execute(
        update(User).where(User.id == user_id).values(password_hash=password_hash)
    )


async def store_rehash(session: AsyncSession, user_id: int, new_hash: str) -> None:
    """Keep a hash upgraded to the current parameters at a successful login (no commit).

    Only possible then, while the plain password is at hand.
    """
    await session.execute(update(User).where(User.id == user_id).values(password_hash=new_hash))
