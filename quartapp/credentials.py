"""Checking a password: the one path every password check takes, login or password change.

The attempt is counted by the throttle before any hashing, so a burst verifies no
more passwords than the limit, whichever form it comes through. The database
connection goes back to the pool before hashing starts, so logins waiting for a
hashing slot never hold connections that other requests need.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from werkzeug.exceptions import TooManyRequests

from . import accounts, devices, signals, throttle
from .db import User, db
from .passwords import Passwords


@dataclass(frozen=True)
class Checked:
    """The outcome of one check: the user when the password was right."""

    username: str
    address: str
    device: str | None
    user: User | None = None
    new_hash: str | None = None


async def check(
    config: Mapping[str, Any],
    hasher: Passwords,
    *,
    username: str,
    password: str,
    address: str | None,
    cookies: Mapping[str, str],
) -> Checked:
    """Count the attempt, then verify; raises TooManyRequests during a lockout.

    A correct password is refused too during a lockout, or the lockout would confirm
    guesses. When every place in line for hashing is taken this raises
    :class:`~.passwords.Busy` before anything is counted, so being turned away never
    counts against the user.
    """
    name = accounts.normalize_username(username)
    key = throttle.address_key(address, config)
    device = await devices.trusted(config, cookies, name)
    with hasher.admission():
        async with db.session() as session:
            lockout = await throttle.attempt(
                session, config, username=name, address=key, device=device
            )
            user = None if lockout else await accounts.find_user(session, name)
            await session.commit()
        if lockout is not None:
            signals.send(signals.locked_out, username=name, retry_after=lockout.retry_after)
            raise TooManyRequests(retry_after=lockout.retry_after)
        stored = user.password_hash if user else None
        result = await hasher.verify(stored, password, admitted=True)
    if user is None or not result.ok:
        return Checked(name, key, device)
    return Checked(name, key, device, user, result.new_hash)


async def record_success(session: AsyncSession, checked: Checked) -> None:
    """Clear the throttle for a right password and keep an upgraded hash (no commit)."""
    await throttle.succeeded(
        session, username=checked.username, address=checked.address, device=checked.device
    )
    if checked.user is not None and checked.new_hash is not None:
        await accounts.store_rehash(session, checked.user.id, checked.new_hash)
