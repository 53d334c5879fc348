"""Wrong second-factor codes in a row, counted per user on every path.

The login throttle counts a code as it counts a password, but against a trusted
device's own budget, whose windows never grow: a thief holding the password and the
device cookie could guess a few hundred codes a day. So every wrong code also counts
against the user, wherever it was typed (the code step of a login, from any browser,
and /login/confirm):

- the first :data:`FREE` misses in a row cost nothing more than the throttle's count;
- each further miss makes TOTP codes wait, ``LOGIN_FAILURE_WINDOW`` after the fifth
  and doubling each time, capped at 16 windows as the throttle's lockouts are;
- after :data:`LIMIT` misses in a row, TOTP codes are refused outright: only a
  recovery code or a passkey signs in, and its success ends the run, as any right
  code does.

So at most :data:`LIMIT` TOTP codes are ever guessed between two successes of the
owner. A TOTP code's miss is counted *before* it is checked, by one conditional UPDATE
(``misses < LIMIT`` and no wait in force), so parallel guesses cannot slip past the
limit. Recovery codes (120 bits) are not held back by the waits, so the owner always
has a way in; a wrong one counts as a miss all the same.

The latest :data:`KEPT` misses of each user are kept (when, the address and browser,
which step) for the owner's two-factor page.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ..auth.settings import AuthSettings
from ..auth.throttle import MAX_STRIKES
from ..db import ADDRESS_COLUMN, USER_AGENT_COLUMN
from .models import SecondFactorFailure, TotpFactor

# Wrong codes in a row after which a TOTP code is refused until another factor succeeds.
LIMIT = 10
# Wrong codes in a row that make no TOTP code wait (the throttle's own limit is 5).
FREE = 4
# Failures kept per user for the owner to see.
KEPT = 20
SIGN_IN, CONFIRM = "sign-in", "confirm"

BLOCKED = (
    "There were too many wrong codes in a row for this account, so authenticator codes "
    "are not accepted now. Use one of your recovery codes, or sign in with a passkey."
)


@dataclass(frozen=True, slots=True)
class Refusal:
    """A TOTP code refused unchecked: what to tell the user, and how long to wait."""

    message: str
    # Seconds until a TOTP code may be tried again; None when only another factor helps.
    retry_after: int | None = None


def wait_after(config: AuthSettings, misses: int) -> int | None:
    """Seconds TOTP codes wait after ``misses`` wrong codes in a row; None for no wait."""
    if misses <= FREE or misses >= LIMIT:
        return None
    window = config.login_failure_window
    return window << min(misses - FREE - 1, MAX_STRIKES)  # doubling: window x 2**n


def waiting(retry_after: int) -> str:
    """The message for a TOTP code refused during a wait."""
    minutes = max(1, math.ceil(retry_after / 60))
    return (
        "There were too many wrong codes in a row for this account. Try an authenticator "
        f"code again in {minutes} minute{'s' if minutes != 1 else ''}, or use one of your "
        "recovery codes or a passkey now."
    )


async def claim(session: AsyncSession, user_id: int, now: float) -> Refusal | None:
    """Count a TOTP code as a miss before it is checked (no commit); why not, if refused.

    The UPDATE holds the factor's row (PostgreSQL) or the write lock (SQLite) until the
    caller commits, so guesses of one user are checked one at a time. A right code
    then calls :func:`reset`. None too when the user has no key in force: the check
    that follows fails.
    """
    claimed = await session.execute(
        update(TotpFactor)
        .where(
            TotpFactor.user_id == user_id,
            TotpFactor.confirmed_at.is_not(None),
            TotpFactor.misses < LIMIT,
            or_(TotpFactor.wait_until.is_(None), TotpFactor.wait_until <= now),
        )
        .values(misses=TotpFactor.misses + 1)
    )
    if getattr(claimed, "rowcount", 0):
        return None
    row = (
        await session.execute(
            select(TotpFactor.misses, TotpFactor.wait_until).where(
                TotpFactor.user_id == user_id, TotpFactor.confirmed_at.is_not(None)
            )
        )
    ).first()
    if row is None:
        return None
    misses, wait_until = row
    if misses >= LIMIT:
        return Refusal(BLOCKED)
    retry_after = max(1, math.ceil((wait_until or now) - now))
    return Refusal(waiting(retry_after), retry_after)


async def missed(
    session: AsyncSession,
    config: AuthSettings,
    user_id: int,
    *,
    claimed: bool,
    step: str,
    address: str | None,
    user_agent: str | None,
    now: float,
) -> None:
    """Record a wrong code (no commit): its count unless :func:`claim` made it, the wait, the row.

    ``claimed``: whether :func:`claim` counted this code already.
    """
    if not claimed:
        await session.execute(
            update(TotpFactor)
            .where(TotpFactor.user_id == user_id)
            .values(misses=TotpFactor.misses + 1)
        )
    misses = await session.scalar(select(TotpFactor.misses).where(TotpFactor.user_id == user_id))
    wait = wait_after(config, int(misses or 0))
    if wait is not None:
        await session.execute(
            update(TotpFactor).where(TotpFactor.user_id == user_id).values(wait_until=now + wait)
        )
    session.add(
        SecondFactorFailure(
            user_id=user_id,
            at=now,
            address=(address or "")[:ADDRESS_COLUMN] or None,
            user_agent=(user_agent or "")[:USER_AGENT_COLUMN] or None,
            step=step,
        )
    )
    await session.flush()
    older = (
        select(SecondFactorFailure.id)
        .where(SecondFactorFailure.user_id == user_id)
        .order_by(SecondFactorFailure.at.desc(), SecondFactorFailure.id.desc())
        .offset(KEPT)
    )
    await session.execute(
        delete(SecondFactorFailure).where(SecondFactorFailure.id.in_(older.scalar_subquery()))
    )


async def reset(session: AsyncSession, user_id: int) -> None:
    """A right code of any kind (or a passkey) ends the run of misses (no commit)."""
    await session.execute(
        update(TotpFactor)
        .where(TotpFactor.user_id == user_id, TotpFactor.misses > 0)
        .values(misses=0, wait_until=None)
    )


async def in_a_row(session: AsyncSession, user_id: int) -> int:
    """The user's wrong codes in a row now."""
    misses = await session.scalar(select(TotpFactor.misses).where(TotpFactor.user_id == user_id))
    return int(misses or 0)


async def recent(session: AsyncSession, user_id: int) -> Sequence[SecondFactorFailure]:
    """The user's kept failures, newest first."""
    query = (
        select(SecondFactorFailure)
        .where(SecondFactorFailure.user_id == user_id)
        .order_by(SecondFactorFailure.at.desc(), SecondFactorFailure.id.desc())
        .limit(KEPT)
    )
    return (await session.execute(query)).scalars().all()
