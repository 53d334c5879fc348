"""Login throttling: attempts are limited per username, per client address and per device.

Every attempt that gets as far as hashing is counted *before* its password is hashed,
by one atomic upsert per key on ``throttle_counters``: parallel attempts queue on the
row, so a burst verifies at most the limit, on SQLite and PostgreSQL alike, across
every worker and dyno that shares the database. Unknown usernames are counted exactly
like real ones, so a lockout says nothing about which accounts exist.

An attempt that would be refused anyway is found first by :func:`refused`, one
read-only SELECT of its counters: it is answered 429 without taking a place in line
for hashing and without writing anything, so a flood of refused attempts neither
crowds out other logins nor grows the table. The upsert stays the authority when
attempts race past that check.

A browser that has logged in as a user carries a device cookie (:mod:`.devices`).
Its attempts count against the device instead of the username, so strangers who
keep a username locked cannot lock its owner out (OWASP's device cookies). Without
one, each window that ends at its limit doubles the next, up to ``MAX_STRIKES``
doublings (16 windows: 4 hours at the default 15 minutes).
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, delete, or_, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from .models import ThrottleCounter
from .settings import AuthSettings

USER, ADDRESS, DEVICE = "user", "addr", "device"
# Codes typed on /login/device, counted by address network apart from passwords, so a
# flood of codes does not lock the network's password logins, nor they its codes.
CODE = "code"
KEY_LENGTH = 255
# 2**4 = 16 windows at most: a stranger can keep a username locked (for browsers that
# never logged in as it) for 4 hours per few requests, not for days.
MAX_STRIKES = 4
# A username's counter that ended at its limit is kept this long past its window, so
# repeated lockouts are remembered; every other counter goes when its window ends.
MEMORY = 86400
# IPv6 networks counted on top of THROTTLE_IPV6_PREFIX, widest first (each limited by
# AuthSettings.network_limit): a /56 or /48 holder rotating /64s meets these.
AGGREGATES = (48, 56)


@dataclass(frozen=True)
class Lockout:
    """A limit was reached: how many seconds until a retry may succeed.

    ``by_address`` says whether an address (or network) limit is among those
    reached. It never says whether a username's or a device's limit was: nothing
    shown to a client tells whether its device cookie was trusted.
    """

    retry_after: int
    by_address: bool = False


@dataclass(frozen=True)
class Counter:
    """One key an attempt is counted against, and its limit per window."""

    scope: str
    key: str
    limit: int
    # Whether a window that ends at the limit makes the next one longer.
    grows: bool = False


def address_key(address: str | None, config: AuthSettings) -> str:
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
        prefix = config.throttle_ipv6_prefix
        return str(ipaddress.IPv6Network((parsed, prefix), strict=False))
    return str(parsed)


def networks(key: str) -> list[tuple[int, str]]:
    """The wider IPv6 networks an address key is also counted under, widest first.

    ``(prefix, key)`` for each of the /48 and /56 that is wider than ``key`` itself;
    none for IPv4 or an unparsable address.
    """
    try:
        network = ipaddress.ip_network(key)
    except ValueError:
        return []
    if not isinstance(network, ipaddress.IPv6Network):
        return []
    return [
        (prefix, str(network.supernet(new_prefix=prefix)))
        for prefix in AGGREGATES
        if network.prefixlen > prefix
    ]


def counters(
    config: AuthSettings, *, username: str, address: str, device: str | None
) -> list[Counter]:
    """The counters one attempt counts against: address networks widest first, then the name.

    Always in this order, so two transactions never wait on each other's rows in
    opposite orders.
    """
    found = [
        Counter(ADDRESS, key, config.network_limit(prefix)) for prefix, key in networks(address)
    ]
    found.append(Counter(ADDRESS, address, config.login_failures_per_address))
    if device is not None:
        found.append(Counter(DEVICE, device, config.login_failures_per_device))
    else:
        found.append(
            Counter(USER, username[:KEY_LENGTH], config.login_failures_per_user, grows=True)
        )
    return found


def code_counters(config: AuthSettings, address: str) -> list[Counter]:
    """What one code typed on /login/device counts against: the address networks, widest
    first, at the address limits, under :data:`CODE`.

    Not per code: each guess is a different code of 60 random bits, so a count per code
    would never reach a limit; and not per user, as a wrong code names nobody.
    """
    found = [Counter(CODE, key, config.network_limit(prefix)) for prefix, key in networks(address)]
    found.append(Counter(CODE, address, config.login_failures_per_address))
    return found


def _upsert(session: AsyncSession) -> Any:
    dialect = session.get_bind().dialect.name
    return (postgresql if dialect == "postgresql" else sqlite).insert(ThrottleCounter)


async def refused(
    session: AsyncSession,
    config: AuthSettings,
    *,
    username: str,
    address: str,
    device: str | None,
) -> Lockout | None:
    """The lockout this attempt would meet, read without counting it (one SELECT).

    An attempt is refused when any of its counters has used up its limit in a window
    that has not ended. The wait is until the last of those windows ends.
    """
    wanted = counters(config, username=username, address=address, device=device)
    return await refused_by(session, wanted)


async def locked_usernames(
    session: AsyncSession, config: AuthSettings, usernames: Sequence[str]
) -> set[str]:
    """Which of ``usernames`` are locked now: their own counter has used up its limit in
    a window that has not ended (what ``users list --locked`` shows). Their devices and
    the addresses that tried them are not counted: those lock a browser, not the name."""
    keys = {name[:KEY_LENGTH]: name for name in usernames}
    if not keys:
        return set()
    rows = await session.execute(
        select(ThrottleCounter.key).where(
            ThrottleCounter.scope == USER,
            ThrottleCounter.key.in_(list(keys)),
            ThrottleCounter.window_end > time.time(),
            ThrottleCounter.attempts >= config.login_failures_per_user,
        )
    )
    return {keys[key] for (key,) in rows}


async def refused_by(session: AsyncSession, wanted: list[Counter]) -> Lockout | None:
    """:func:`refused` for a given list of counters (a passkey's have no username)."""
    limits = {(counter.scope, counter.key): counter.limit for counter in wanted}
    now = time.time()
    rows = await session.execute(
        select(
            ThrottleCounter.scope,
            ThrottleCounter.key,
            ThrottleCounter.attempts,
            ThrottleCounter.window_end,
        ).where(
            tuple_(ThrottleCounter.scope, ThrottleCounter.key).in_(list(limits)),
            ThrottleCounter.window_end > now,
        )
    )
    over = [
        (scope, window_end)
        for scope, key, attempts, window_end in rows
        if attempts >= limits[(scope, key)]
    ]
    if not over:
        return None
    wait = max(window_end for _, window_end in over) - now
    return Lockout(max(1, math.ceil(wait)), by_address=any(s in (ADDRESS, CODE) for s, _ in over))


async def _count(session: AsyncSession, counter: Counter, window: int) -> Lockout | None:
    """Count one attempt against a key; the lockout if it is over the limit."""
    now = time.time()
    insert = _upsert(session).values(
        scope=counter.scope, key=counter.key, attempts=1, window_end=now + window, strikes=0
    )
    # The upsert takes the row's lock (PostgreSQL) or the database's write lock
    # (SQLite) until the caller commits, so the read below is of a settled count.
    statement = insert.on_conflict_do_update(
        index_elements=[ThrottleCounter.scope, ThrottleCounter.key],
        set_={"attempts": ThrottleCounter.attempts + 1},
    ).returning(ThrottleCounter.attempts, ThrottleCounter.window_end, ThrottleCounter.strikes)
    attempts, window_end, strikes = (await session.execute(statement)).one()
    if window_end <= now:
        # The window is over: start a new one with this attempt. One that ended at its
        # limit (refusals are not counted, so the limit is its top) makes the next one
        # longer, for keys whose owner has another way in.
        ended_locked = attempts - 1 >= counter.limit
        strikes = min(strikes + 1, MAX_STRIKES) if counter.grows and ended_locked else 0
        await session.execute(
            update(ThrottleCounter)
            .where(ThrottleCounter.scope == counter.scope, ThrottleCounter.key == counter.key)
            .values(attempts=1, window_end=now + window * 2**strikes, strikes=strikes)
        )
        return None
    if attempts > counter.limit:
        return Lockout(
            max(1, math.ceil(window_end - now)), by_address=counter.scope in (ADDRESS, CODE)
        )
    return None


async def attempt(
    session: AsyncSession,
    config: AuthSettings,
    *,
    username: str,
    address: str,
    device: str | None,
) -> Lockout | None:
    """Count a login attempt before hashing; the lockout in force, if any.

    ``username`` and ``address`` are keys (stored username, :func:`address_key`);
    ``device`` is the nonce of a device cookie trusted for this username. The caller
    commits, whatever the answer. Counting stops at the first counter over its limit:
    an attempt an address limit refuses writes no row for the name it tried.
    """
    wanted = counters(config, username=username, address=address, device=device)
    return await count(session, config, wanted)


async def count(
    session: AsyncSession,
    config: AuthSettings,
    wanted: list[Counter],
    *,
    window: int | None = None,
) -> Lockout | None:
    """:func:`attempt` for a given list of counters, in their order (the caller commits).

    ``window``: seconds a count lasts, ``LOGIN_FAILURE_WINDOW`` unless a feature's own
    limit counts over another span (mail's reset requests: an hour).
    """
    window = config.login_failure_window if window is None else window
    for counter in wanted:
        lockout = await _count(session, counter, window)
        if lockout is not None:
            return lockout
    return None


async def succeeded(
    session: AsyncSession, *, username: str, address: str, device: str | None
) -> None:
    """After a correct password: clear the count it was made against (no commit).

    That is the device's when a trusted device logged in, else the username's: the
    owner logging in on their own device does not hand strangers a fresh set of
    guesses at the name. The address keeps its failures: its attempt is taken back
    (from its wider networks too), so it counts only wrong passwords and an office
    behind one address can log in.
    """
    # The address rows first, then the name's, in the order attempt() locks them: the
    # other order deadlocked two right-password logins of one user from one address on
    # PostgreSQL (each held the row the other was waiting for), and one got a 503.
    keys = [address, *(network for _, network in networks(address))]
    await session.execute(
        update(ThrottleCounter)
        .where(
            ThrottleCounter.scope == ADDRESS,
            ThrottleCounter.key.in_(keys),
            ThrottleCounter.attempts > 0,
        )
        .values(attempts=ThrottleCounter.attempts - 1)
    )
    scope, key = (DEVICE, device) if device is not None else (USER, username[:KEY_LENGTH])
    await session.execute(
        delete(ThrottleCounter).where(ThrottleCounter.scope == scope, ThrottleCounter.key == key)
    )


async def prune(session: AsyncSession, config: AuthSettings, *, batch: int = 500) -> int:
    """Delete up to ``batch`` counters that no longer matter (commits); how many.

    A counter matters only while its window lasts, except a username's that ended at
    its limit: that one is kept for ``MEMORY`` so that the next window doubles. So
    most rows a flood writes go as soon as their window ends, not a day later.
    Bounded, so a prune never holds a long lock: callers repeat it while it is full.
    """
    now = time.time()
    done = or_(
        ThrottleCounter.window_end <= now - MEMORY,
        and_(
            ThrottleCounter.window_end <= now,
            or_(
                ThrottleCounter.scope != USER,
                ThrottleCounter.attempts < config.login_failures_per_user,
            ),
        ),
    )
    stale = select(ThrottleCounter.scope, ThrottleCounter.key).where(done).limit(batch)
    key = tuple_(ThrottleCounter.scope, ThrottleCounter.key)
    result = await session.execute(delete(ThrottleCounter).where(key.in_(stale)))
    await session.commit()
    return int(getattr(result, "rowcount", 0) or 0)
