"""Each account's address: normalised, unique whatever its case, confirmed or not.

An address is checked for syntax only (email-validator, no DNS: a request never waits
on a resolver) and kept in its normal form; ``address_key``, its lower case, is what
the unique index holds. Mail about an account goes only to a confirmed address
(:func:`confirmed`): one someone merely typed in gets nothing but its confirmation link.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import Select, delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from ..auth.models import User
from ..auth.users import AccountError
from ..web.display import iso_utc
from .models import ADDRESS_COLUMN, EmailAddress


class AddressError(AccountError):
    """An address that cannot be used: not an address, or another account's.

    An :class:`~quartapp.auth.users.AccountError`, so the CLI prints it as one line.
    """


@dataclass(frozen=True)
class Normal:
    """An address in its normal form, and the key it is unique under."""

    address: str
    key: str


def normalise(text: str) -> Normal:
    """``text`` as a stored address; :class:`AddressError` with what is wrong."""
    text = text.strip()
    if not text:
        raise AddressError("enter an email address")
    if len(text) > ADDRESS_COLUMN:
        raise AddressError(f"an email address is at most {ADDRESS_COLUMN} characters")
    try:
        found = validate_email(text, check_deliverability=False)
    except EmailNotValidError as error:
        raise AddressError(f"{text!r} is not an email address: {error}") from None
    address = found.normalized
    if len(address) > ADDRESS_COLUMN:
        raise AddressError(f"an email address is at most {ADDRESS_COLUMN} characters")
    return Normal(address, address.lower())


async def of_user(dbs: AsyncSession, user_id: int) -> EmailAddress | None:
    """The user's address row, confirmed or not, or None."""
    return await dbs.get(EmailAddress, user_id)


async def confirmed(dbs: AsyncSession, user_id: int) -> str | None:
    """The address mail about this account may go to: its confirmed one, or None."""
    return await dbs.scalar(
        select(EmailAddress.address).where(
            EmailAddress.user_id == user_id, EmailAddress.confirmed_at.is_not(None)
        )
    )


async def owner(dbs: AsyncSession, key: str) -> int | None:
    """The id of the user whose *confirmed* address has this key, or None.

    An unconfirmed address holds nothing: whoever confirms it from its mailbox takes it
    (:func:`store`), so no one can squat on an address they typed in.
    """
    return await dbs.scalar(
        select(EmailAddress.user_id).where(
            EmailAddress.address_key == key, EmailAddress.confirmed_at.is_not(None)
        )
    )


def username_query(user_id: int) -> Select[str]:
    """The SELECT of a user's name."""
    return select(User.username).where(User.id == user_id)


@dataclass(frozen=True)
class Account:
    """A user found by a confirmed address: what a reset mail needs."""

    user_id: int
    username: str
    address: str


async def account_for(dbs: AsyncSession, key: str) -> Account | None:
    """The account whose *confirmed* address has this key (one query), or None."""
    row = (
        await dbs.execute(
            select(User.id, User.username, EmailAddress.address)
            .join(EmailAddress, EmailAddress.user_id == User.id)
            .where(EmailAddress.address_key == key, EmailAddress.confirmed_at.is_not(None))
        )
    ).first()
    return Account(row[0], row[1], row[2]) if row is not None else None


async def store(dbs: AsyncSession, user_id: int, normal: Normal, *, confirmed: bool) -> None:
    """Set the user's address (no commit); :class:`AddressError` if another account has it.

    Replaces any address the user had. A confirmed address takes the key from another
    account's unconfirmed one. The unique index is the authority when two requests race
    for one address; the SELECT first gives the usual case its message without a
    failed statement.
    """
    held = (
        await dbs.execute(
            select(EmailAddress.user_id, EmailAddress.confirmed_at).where(
                EmailAddress.address_key == normal.key, EmailAddress.user_id != user_id
            )
        )
    ).first()
    if held is not None:
        if held.confirmed_at is not None or not confirmed:
            raise AddressError(f"{normal.address!r} is another account's address")
        # Someone typed it in and never confirmed it; its mailbox's owner takes it.
        await dbs.execute(delete(EmailAddress).where(EmailAddress.user_id == held.user_id))
    now = time.time()
    row = await dbs.get(EmailAddress, user_id)
    if row is None:
        row = EmailAddress(user_id=user_id, created_at=now)
        dbs.add(row)
    row.address = normal.address
    row.address_key = normal.key
    row.created_at = now
    row.confirmed_at = now if confirmed else None
    try:
        await dbs.flush()
    except IntegrityError:
        await dbs.rollback()
        raise AddressError(f"{normal.address!r} is another account's address") from None


async def remove(dbs: AsyncSession, user_id: int) -> None:
    """Forget the user's address (no commit)."""
    await dbs.execute(delete(EmailAddress).where(EmailAddress.user_id == user_id))


async def export(dbs: AsyncSession, user_id: int) -> dict[str, object] | None:
    """The user's address for their data export (auth's ``exporters``), or None."""
    row = await of_user(dbs, user_id)
    if row is None:
        return None
    return {
        "address": row.address,
        "added_at": iso_utc(row.created_at),
        "confirmed": row.confirmed_at is not None,
        "confirmed_at": iso_utc(row.confirmed_at),
    }


async def listing(dbs: AsyncSession, user_ids: Sequence[int]) -> dict[int, str]:
    """For ``users list``: each user's address and whether it is confirmed."""
    rows = await dbs.execute(
        select(EmailAddress.user_id, EmailAddress.address, EmailAddress.confirmed_at).where(
            EmailAddress.user_id.in_(list(user_ids))
        )
    )
    return {
        user_id: f"{address} ({'confirmed' if confirmed_at else 'unconfirmed'})"
        for user_id, address, confirmed_at in rows
    }
