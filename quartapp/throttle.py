"""Login throttling: attempts are limited per username, per client address and per device.

Every attempt is counted *before* its password is hashed, by one atomic upsert per key
on ``throttle_counters``: parallel attempts queue on the row, so a burst verifies at
most the limit, on SQLite and PostgreSQL alike, across every worker and dyno that
shares the database. Unknown usernames are counted exactly like real ones, so a
lockout says nothing about which accounts exist.

A browser that has logged in as a user carries a device cookie (:mod:`.devices`).
Its attempts count against the device instead of the username, so strangers who
keep a username locked cannot lock its owner out (OWASP's device cookies). Without
one, each window that ends locked doubles the next, up to ``MAX_STRIKES`` doublings.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from .db import ThrottleCounter

USER, ADDRESS, DEVICE = "user", "addr", "device"
KEY_LENGTH = 255
MAX_STRIKES = 6
# A counter is kept this long past its window, so repeated lockouts are remembered.
MEMORY = 86400


@dataclass(frozen=True)
class Lockout:
    """A limit was reached: how many seconds until a retry may succeed.

    It does not say which limit, so nothing shown to a client tells whether its
    device cookie was trusted.
    """

    retry_after: int


def address_key(address: str | None, config: Mapping[str, Any]) -> str:
    """The key an address is counted under: IPv4 as is, IPv6 by its network prefix.

    One IPv6 host is handed a whole /64, so counting /128s would let it rotate past
    any limit; an IPv4-mapped IPv6 address is the IPv4 address it maps.
    """
    try:
        parsed = ipaddress.ip_address(address or "")
    except ValueError:
        return (address or "unknown")[:KEY_LENGTH]
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        prefix = config["THROTTLE_IPV6_PREFIX"]
        return str(ipaddress.IPv6Network((parsed, prefix), strict=False))
    return str(parsed)


def _upsert(session: AsyncSession) -> Any:
    dialect = session.get_bind().dialect.name
    return (postgresql if dialect == "postgresql" else sqlite).insert(ThrottleCounter)


async def _count(
    session: AsyncSession, scope: str, key: str, limit: int, window: int, *, grows: bool
) -> Lockout | None:
    """Count one attempt against a key; the lockout if it is over the limit."""
    now = time.time()
    insert = _upsert(session).values(
        scope=scope, key=key, attempts=1, window_end=now + window, strikes=0
    )
    # The upsert takes the row's lock (PostgreSQL) or the database's write lock
    # (SQLite) until the caller commits, so the read below is of a settled count.
    statement = insert.on_conflict_do_update(
        index_elements=[ThrottleCounter.scope, ThrottleCounter.key],
        set_={"attempts": ThrottleCounter.attempts + 1},
    ).returning(ThrottleCounter.attempts, ThrottleCounter.window_end, ThrottleCounter.strikes)
    attempts, window_end, strikes = (await session.execute(statement)).one()
    if window_end <= now:
        # The window is over: start a new one with this attempt. One that ended locked
        # makes the next one longer, for keys whose owner has another way in.
        ended_locked = attempts - 1 > limit
        strikes = min(strikes + 1, MAX_STRIKES) if grows and ended_locked else 0
        await session.execute(
            update(ThrottleCounter)
            .where(ThrottleCounter.scope == scope, ThrottleCounter.key == key)
            .values(attempts=1, window_end=now + window * 2**strikes, strikes=strikes)
        )
        return None
    if attempts > limit:
        return Lockout(max(1, math.ceil(window_end - now)))
    return None


async def attempt(
    session: AsyncSession,
    config: Mapping[str, Any],
    *,
    username: str,
    address: str,
    device: str | None,
) -> Lockout | None:
    """Count a login attempt before hashing; the lockout in force, if any.

    ``username`` and ``address`` are keys (stored username, :func:`address_key`);
    ``device`` is the nonce of a device cookie trusted for this username. The caller
    commits, whatever the answer: a refused attempt counts too.
    """
    window = config["LOGIN_FAILURE_WINDOW"]
    # Always the address first, then the name: two transactions never wait on each
    # other's rows in opposite orders.
    lockout = await _count(
        session,
        ADDRESS,
        address,
        config["LOGIN_FAILURES_PER_ADDRESS"],
        window,
        grows=False,
    )
    if device is not None:
        by_name = await _count(
            session, DEVICE, device, config["LOGIN_FAILURES_PER_DEVICE"], window, grows=False
        )
    else:
        by_name = await _count(
            session,
            USER,
            username[:KEY_LENGTH],
            config["LOGIN_FAILURES_PER_USER"],
            window,
            grows=True,
        )
    return lockout or by_name


async def succeeded(
    session: AsyncSession, *, username: str, address: str, device: str | None
) -> None:
    """After a correct password: clear the count it was made against (no commit).

    That is the device's when a trusted device logged in, else the username's: the
    owner logging in on their own device does not hand strangers a fresh set of
    guesses at the name. The address keeps its failures: its attempt is taken back,
    so it counts only wrong passwords and an office behind one address can log in.
    """
    scope, key = (DEVICE, device) if device is not None else (USER, username[:KEY_LENGTH])
    await session.execute(
        delete(ThrottleCounter).where(ThrottleCounter.scope == scope, ThrottleCounter.key == key)
    )
    await session.execute(
        update(ThrottleCounter)
        .where(
            ThrottleCounter.scope == ADDRESS,
            ThrottleCounter.key == address,
            ThrottleCounter.attempts > 0,
        )
        .values(attempts=ThrottleCounter.attempts - 1)
    )


async def prune(session: AsyncSession, *, batch: int = 500) -> int:
    """Delete up to ``batch`` counters long past their window (commits); how many.

    Bounded, so a prune never holds a long lock: callers repeat it while it is full.
    """
    stale = (
        select(ThrottleCounter.scope, ThrottleCounter.key)
        .where(ThrottleCounter.window_end <= time.time() - MEMORY)
        .limit(batch)
    )
    key = tuple_(ThrottleCounter.scope, ThrottleCounter.key)
    result = await session.execute(delete(ThrottleCounter).where(key.in_(stale)))
    await session.commit()
    return int(getattr(result, "rowcount", 0) or 0)
