"""TOTP keys (RFC 6238, through pyotp): making one, its QR code, and using each code once.

A user has at most one key, in ``totp_factors``. It is *pending* from the moment the
enrolment page makes it until a code from it is entered, and only then in force. A
code is accepted for the current 30-second step or the one either side (clocks drift),
and then never again: the step of the last accepted code is stored, and a code is
accepted only by one ``UPDATE ... WHERE last_timecode IS NULL OR last_timecode < :step``,
so two processes, or two instances on one database, cannot both accept it.

A pending key belongs to the login that made it, and lives :data:`PENDING_LIFETIME`
seconds: another login, or the same one later, is shown a new key that replaces it, and
only the login that was shown a key, within that time, may confirm it. So a key that
someone copied from a session once open somewhere is never the one its owner turns on.
Ending a user's logins deletes their pending keys too (:mod:`quartapp.auth.logins`).
"""

from __future__ import annotations

import hmac
import io
import time
from collections.abc import Sequence

import pyotp
from sqlalchemy import delete, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from .models import PendingLogin, RecoveryCode, TotpFactor

ISSUER = "quartapp"
DIGITS = 6
# pyotp's valid_window=1: a code from the step before or after the current one is fine.
WINDOW = 1
# Seconds a pending key may be confirmed after it was made (the page shows a new one after).
PENDING_LIFETIME = 15 * 60


def new_secret() -> str:
    """A new key: 160 bits from ``secrets``, in base32 without padding (32 characters)."""
    return pyotp.random_base32()


def provisioning_uri(secret: str, username: str) -> str:
    """The ``otpauth://`` URI an authenticator app reads from the QR code."""
    return pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=ISSUER)


def qr_svg(uri: str) -> bytes:
    """The QR code of ``uri`` as a standalone SVG document (no inline styles or scripts)."""
    buffer = io.BytesIO()
    # Imported on first use: only the enrolment page draws a code, and segno's tables
    # would otherwise sit in every worker.
    import segno

    segno.make(uri, error="m").save(
        buffer, kind="svg", scale=5, border=4, title="QR code of your authenticator key"
    )
    return buffer.getvalue()


def normalize(text: str) -> str | None:
    """A typed TOTP code without its spaces, or None if it is not six digits."""
    code = "".join(text.split())
    return code if len(code) == DIGITS and code.isascii() and code.isdigit() else None


def matching_step(secret: str, code: str, now: float) -> int | None:
    """The time step within the window whose code ``code`` is, or None.

    pyotp's ``verify(valid_window=1)`` says only yes or no; the step is what makes a
    code single use. Every step is compared, in constant time.
    """
    totp = pyotp.TOTP(secret)
    current = totp.timecode(now)
    found = None
    for step in range(current - WINDOW, current + WINDOW + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            found = step
    return found


async def find(session: AsyncSession, user_id: int) -> TotpFactor | None:
    """The user's key, pending or in force, or None."""
    return await session.get(TotpFactor, user_id, populate_existing=True)


async def is_enabled(session: AsyncSession, user_id: int) -> bool:
    """Whether the user has a key in force (a pending one does not count)."""
    query = select(TotpFactor.user_id).where(
        TotpFactor.user_id == user_id, TotpFactor.confirmed_at.is_not(None)
    )
    return (await session.execute(query)).first() is not None


async def in_force(session: AsyncSession, user_ids: Sequence[int]) -> set[int]:
    """Which of ``user_ids`` have TOTP in force (``users list --totp``)."""
    if not user_ids:
        return set()
    rows = await session.scalars(
        select(TotpFactor.user_id).where(
            TotpFactor.user_id.in_(list(user_ids)), TotpFactor.confirmed_at.is_not(None)
        )
    )
    return set(rows)


def is_pending_for(factor: TotpFactor, login_id: str, now: float) -> bool:
    """Whether ``factor`` is a pending key this login made, still within its lifetime."""
    return (
        factor.confirmed_at is None
        and factor.login_id is not None
        and hmac.compare_digest(factor.login_id, login_id)
        and now - factor.created_at < PENDING_LIFETIME
    )


async def pending_secret(session: AsyncSession, user_id: int, login_id: str) -> str | None:
    """This login's pending key, made now if there is none (commits); None if one is in force.

    A pending key of another login, or one past its lifetime, is replaced by a new one:
    it is never shown again.
    """
    now = time.time()
    factor = await find(session, user_id)
    if factor is not None:
        if factor.confirmed_at is not None:
            return None
        if is_pending_for(factor, login_id, now):
            return factor.secret
        secret = new_secret()
        # Conditional on the key read: of two requests replacing it, one wins and the
        # other shows what it finds.
        replaced = await session.execute(
            update(TotpFactor)
            .where(
                TotpFactor.user_id == user_id,
                TotpFactor.secret == factor.secret,
                TotpFactor.confirmed_at.is_(None),
            )
            .values(secret=secret, created_at=now, login_id=login_id, last_timecode=None)
        )
        await session.commit()
        if getattr(replaced, "rowcount", 0):
            return secret
        return await _current_pending(session, user_id, login_id)
    secret = new_secret()
    session.add(TotpFactor(user_id=user_id, secret=secret, created_at=now, login_id=login_id))
    try:
        await session.commit()
    except IntegrityError:
        # Another request of this user made one first: show it if it is this login's.
        await session.rollback()
        return await _current_pending(session, user_id, login_id)
    return secret


async def _current_pending(session: AsyncSession, user_id: int, login_id: str) -> str | None:
    """The key another request just made or replaced, if it is this login's; else None."""
    factor = await find(session, user_id)
    if factor is None or not is_pending_for(factor, login_id, time.time()):
        return None
    return factor.secret


async def confirm(session: AsyncSession, user_id: int, login_id: str, code: str) -> bool:
    """Put this login's pending key in force if ``code`` is one of its codes (no commit).

    Only the login that made the key, within :data:`PENDING_LIFETIME`, may confirm it.
    The step of that code is stored as used, so the code that turned TOTP on cannot
    also complete a login.
    """
    factor = await find(session, user_id)
    now = time.time()
    if factor is None or not is_pending_for(factor, login_id, now):
        return False
    step = matching_step(factor.secret, code, now)
    if step is None:
        return False
    result = await session.execute(
        update(TotpFactor)
        .where(
            TotpFactor.user_id == user_id,
            TotpFactor.secret == factor.secret,
            TotpFactor.login_id == login_id,
            TotpFactor.created_at > now - PENDING_LIFETIME,
            TotpFactor.confirmed_at.is_(None),
        )
        .values(confirmed_at=now, last_timecode=step, login_id=None, misses=0, wait_until=None)
    )
    return bool(getattr(result, "rowcount", 0))


async def accept(session: AsyncSession, user_id: int, code: str) -> bool:
    """Whether ``code`` is a fresh code of the user's key in force; marks it used (no commit).

    The conditional UPDATE is the one place that decides: of two requests with the same
    code, on any process, one changes the row and the other finds it already moved on.
    The caller commits at once.
    """
    secret = (
        await session.execute(
            select(TotpFactor.secret).where(
                TotpFactor.user_id == user_id, TotpFactor.confirmed_at.is_not(None)
            )
        )
    ).scalar_one_or_none()
    if secret is None:
        return False
    step = matching_step(secret, code, time.time())
    if step is None:
        return False
    result = await session.execute(
        update(TotpFactor)
        .where(
            TotpFactor.user_id == user_id,
            TotpFactor.confirmed_at.is_not(None),
            or_(TotpFactor.last_timecode.is_(None), TotpFactor.last_timecode < step),
        )
        .values(last_timecode=step)
    )
    return bool(getattr(result, "rowcount", 0))


async def end_pending_keys(session: AsyncSession, user_id: int, login_id: str | None) -> None:
    """Delete the user's unconfirmed key, or the one login ``login_id`` made (no commit).

    Registered with auth's ``logins_ending``: a pending key belongs to the login that
    made it, so once that login ends (or all of them) no one may be shown or confirm it.
    """
    query = delete(TotpFactor).where(
        TotpFactor.user_id == user_id, TotpFactor.confirmed_at.is_(None)
    )
    if login_id is not None:
        query = query.where(TotpFactor.login_id == login_id)
    await session.execute(query)


async def remove(session: AsyncSession, user_id: int) -> bool:
    """Forget the user's key, recovery codes and half-done logins (no commit).

    Whether a key was in force.
    """
    enabled = await is_enabled(session, user_id)
    await session.execute(delete(TotpFactor).where(TotpFactor.user_id == user_id))
    await session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user_id))
    await session.execute(delete(PendingLogin).where(PendingLogin.user_id == user_id))
    return enabled
