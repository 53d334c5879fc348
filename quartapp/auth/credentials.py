"""Checking a password: the one path every password check takes, login or password change.

In order, each step cheaper than the next: a look at the room in line for hashing
(no database), a look at the addresses found over their limit a moment ago (no
database: :class:`RecentLockouts`), a read of the throttle's counters (a refused attempt
stops here, with 429, uncounted and holding no place), then a place in line, the count,
and the hash.
The attempt is counted by the throttle before any hashing, so a burst verifies no
more passwords than the limit, whichever form it comes through. The database
connection goes back to the pool before hashing starts, so logins waiting for a
hashing slot never hold connections that other requests need.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import NoReturn

from quart import Quart, current_app
from sqlalchemy.ext.asyncio import AsyncSession

from .. import signals
from ..db import db
from ..web.errors import Busy
from . import devices, throttle, users
from .models import User
from .passwords import Passwords
from .settings import AuthSettings

EXTENSION = "quartapp.recent_lockouts"
# How long an address found over its limit is refused from memory before its counters
# are read again.
REMEMBER_SECONDS = 1.0
# Addresses remembered at most, per process; past it, each is read from the database.
REMEMBER_AT_MOST = 10_000


@dataclass
class _Remembered:
    """When to read an address again, when its lockout ends, when a read of it began."""

    read_again: float
    ends: float
    reading: float | None = None


@dataclass
class RecentLockouts:
    """Address keys found over their limit a moment ago, per process.

    A flood from one address past its limit is refused at every attempt, and each
    refusal read the counters: a database connection per attempt, from a pool the
    people signing in beside it wait for (docs/performance.md). An address lockout
    applies to every attempt from the address, whatever the name or device, so for
    :data:`REMEMBER_SECONDS` after a read finds one, the address is refused from here.
    Then one attempt reads the counters again while the others are still refused from
    here (all of a flood's connections reading at once would queue for the pool every
    second), until that read answers. So the memory can outlast the database's answer
    by that second and the read: when the window ends within it (not past the end it
    read), or a right password already under way from the address takes its attempt
    back.
    """

    clock: Callable[[], float] = time.monotonic
    seconds: float = REMEMBER_SECONDS
    at_most: int = REMEMBER_AT_MOST
    # By address key, on ``clock``.
    _until: dict[str, _Remembered] = field(default_factory=dict)

    def get(self, key: str) -> throttle.Lockout | None:
        """The lockout remembered for ``key``; None when there is none or when this
        caller is the one to read the counters again."""
        entry = self._until.get(key)
        if entry is None:
            return None
        now = self.clock()
        if now >= entry.ends:
            del self._until[key]
            return None
        stale = now >= entry.read_again
        if stale and (entry.reading is None or now - entry.reading >= self.seconds):
            entry.reading = now  # this caller reads; one whose read never came back: again
            return None
        return throttle.Lockout(max(1, math.ceil(entry.ends - now)), by_address=True)

    def remember(self, key: str, lockout: throttle.Lockout) -> None:
        """Keep an address lockout just read from the counters (others are not kept)."""
        if not lockout.by_address:
            self.forget(key)
            return
        now = self.clock()
        if key not in self._until and len(self._until) >= self.at_most:
            self._until = {k: v for k, v in self._until.items() if v.ends > now}
            if len(self._until) >= self.at_most:
                return
        self._until[key] = _Remembered(now + self.seconds, now + lockout.retry_after)

    def forget(self, key: str) -> None:
        """A read found ``key`` under its limits: it is read every time again."""
        self._until.pop(key, None)


def init_app(app: Quart) -> None:
    app.extensions[EXTENSION] = RecentLockouts()


def recent_lockouts(app: Quart | None = None) -> RecentLockouts:
    lockouts: RecentLockouts = (app or current_app).extensions[EXTENSION]
    return lockouts


@dataclass(frozen=True)
class Checked:
    """The outcome of one check: the user when the password was right."""

    username: str
    address: str
    device: str | None
    user: User | None = None
    new_hash: str | None = None


class LockedOut(Exception):
    """The throttle refused an attempt, unchecked: the answer is a 429.

    A domain error, not an HTTP one: the app's handler (``web.errors``) makes the 429
    page with ``Retry-After``, and each blueprint with a form that checks a password
    says in its own words what was refused and where to go back (``auth.errors``,
    ``account.views``). ``by_address`` lets the page say it is the network's.
    """

    def __init__(self, lockout: throttle.Lockout) -> None:
        super().__init__(f"locked out for {lockout.retry_after} s")
        self.retry_after = lockout.retry_after
        self.by_address = lockout.by_address


def client_keys(address: str, username: str, device: str | None) -> list[str]:
    """The clients a login's place in line counts against (:meth:`Passwords.admission`).

    Its widest address network (a /48 for IPv6: one site), and its name: the user's
    trusted devices together, or else the username, so a stranger hammering a name
    never takes the places its owner's devices use.
    """
    widest = [key for _, key in throttle.networks(address)] or [address]
    name = f"device:{username}" if device is not None else f"user:{username}"
    return [f"addr:{widest[0]}", name]


async def check(
    config: AuthSettings,
    hasher: Passwords,
    *,
    username: str,
    password: str,
    address: str | None,
    cookies: Mapping[str, str],
) -> Checked:
    """Count the attempt, then verify; raises :class:`LockedOut` during a lockout.

    A correct password is refused too during a lockout, or the lockout would confirm
    guesses. A lockout is found by reading the counters before anything else is
    done, so a refused attempt takes no place in line and writes nothing. When the
    line for hashing has no room for this client this raises
    :class:`~.passwords.Busy` before anything is counted, so being turned away never
    counts against the user.
    """
    name = users.normalize_username(username)
    key = throttle.address_key(address, config)
    device = await devices.trusted(config, cookies, name)
    clients = client_keys(key, name, device)
    trusted = device is not None
    if not hasher.has_room(clients, trusted=trusted):
        raise Busy
    lockouts = recent_lockouts()
    remembered = lockouts.get(key)
    if remembered is not None:
        refuse(name, remembered)
    with ExitStack() as place:
        async with db.session() as session:
            lockout = await throttle.refused(
                session, config, username=name, address=key, device=device
            )
            user = None
            if lockout is None:
                lockouts.forget(key)
                # Looks at the room again: others may have taken it during the read.
                place.enter_context(hasher.admission(clients, trusted=trusted))
                lockout = await throttle.attempt(
                    session, config, username=name, address=key, device=device
                )
                user = None if lockout else await users.find_user(session, name)
                await session.commit()
        if lockout is not None:
            lockouts.remember(key, lockout)
            refuse(name, lockout)
        stored = user.password_hash if user else None
        result = await hasher.verify(stored, password, admitted=True)
    if user is None or not result.ok:
        return Checked(name, key, device)
    return Checked(name, key, device, user, result.new_hash)


def refuse(username: str, lockout: throttle.Lockout) -> NoReturn:
    """Say that an attempt was refused by the throttle, and raise the 429."""
    signals.send(signals.locked_out, username=username, retry_after=lockout.retry_after)
    raise LockedOut(lockout)


async def count_attempt(
    config: AuthSettings, *, username: str, address: str, device: str | None
) -> None:
    """Count an attempt at a secret that needs no hashing (a second factor's code) in the
    same counters as a password, before it is checked; raises :class:`LockedOut`.
    """
    async with db.session() as session:
        lockout = await throttle.refused(
            session, config, username=username, address=address, device=device
        )
        if lockout is None:
            lockout = await throttle.attempt(
                session, config, username=username, address=address, device=device
            )
            await session.commit()
    if lockout is not None:
        refuse(username, lockout)


async def record_success(session: AsyncSession, checked: Checked) -> None:
    """Clear the throttle for a right password and keep an upgraded hash (no commit)."""
    await throttle.succeeded(
        session, username=checked.username, address=checked.address, device=checked.device
    )
    if checked.user is not None and checked.new_hash is not None:
        await users.store_rehash(session, checked.user.id, checked.new_hash)
