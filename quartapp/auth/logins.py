"""Logins: the server-side record of each one, its expiry, and pruning.

The session cookie holds only a random token; the ``logins`` row holds its SHA-256,
the limits and what the sessions page shows. Every request that carries a token looks
its row up (:func:`find_record`, through :mod:`.login_cache`), so ending a login
anywhere (logout, a password change, ``users revoke-sessions``, deleting the user)
takes effect on the next request, in every worker, and an expired row is refused
whatever the cookie says.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from enum import Enum

from sqlalchemy import bindparam, delete, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from ..db import ADDRESS_COLUMN, USER_AGENT_COLUMN
from . import registry
from .models import Login, User
from .settings import AuthSettings

# last_seen is noted when it is at least this old, so a busy reader is written once a
# minute rather than on every request (in the background, in batches: .last_seen); a
# 30-minute idle limit loses nothing by it.
SEEN_RESOLUTION = 60
PRUNE_BATCH = 500


@dataclass(frozen=True, slots=True)
class CurrentUser:
    """Who a request is logged in as: what ``g.user`` holds."""

    id: int
    username: str
    login_id: str


class Status(Enum):
    """What a session's login token turned out to be."""

    VALID = "valid"
    EXPIRED = "expired"
    UNKNOWN = "unknown"


def digest(token: str) -> str:
    """The stored form of a login token."""
    return hashlib.sha256(token.encode()).hexdigest()


def idle_limit(config: AuthSettings, *, remember: bool) -> int:
    """Seconds a login may go unused: a remembered one lasts as long as it lives."""
    if remember:
        return config.site.remember_me_days * 86400
    return config.session_idle_minutes * 60


def lifetime(config: AuthSettings, *, remember: bool) -> int:
    """Seconds a login lives at most, however active."""
    if remember:
        return config.site.remember_me_days * 86400
    return config.session_max_hours * 3600


async def start(
    session: AsyncSession,
    config: AuthSettings,
    user_id: int,
    *,
    remember: bool,
    address: str | None,
    user_agent: str | None,
    method: str = "password",
    continues: Login | None = None,
) -> str:
    """Add a login row (the caller commits) and return the token for the cookie.

    ``method``: how the user proved who they are, one of the registry's
    ``login_methods`` (features add theirs).
    ``continues``: a login this one replaces (see :func:`rotate`), whose start,
    absolute expiry, method and last re-authentication it keeps. Otherwise, when the
    user already has LOGINS_PER_USER_MAX logins, the oldest end (:func:`make_room`).
    """
    if method not in registry.registry().login_methods:
        raise ValueError(f"unknown login method {method!r}")
    token = secrets.token_urlsafe(32)
    now = time.time()
    login = Login(
        id=digest(token),
        user_id=user_id,
        remember=remember,
        expires_at=now + lifetime(config, remember=remember),
        last_seen=now,
        address=(address or "")[:ADDRESS_COLUMN] or None,
        user_agent=(user_agent or "")[:USER_AGENT_COLUMN] or None,
        method=method,
        verified_at=now,
        verified_method=method,
    )
    if continues is not None:
        login.created_at = continues.created_at
        login.expires_at = continues.expires_at
        login.method = continues.method
        login.verified_at = continues.verified_at
        login.verified_method = continues.verified_method
    else:
        await make_room(session, config, user_id)
    session.add(login)
    return token


async def make_room(session: AsyncSession, config: AuthSettings, user_id: int) -> int:
    """End a user's oldest logins so one more stays within LOGINS_PER_USER_MAX (no commit).

    Run in the new login's transaction, so the oldest ends exactly when the newest
    starts. Returns how many ended (their rows go; the devices are logged out at
    their next request).
    """
    if session.get_bind().dialect.name == "postgresql":
        # Two logins of one user at once would each end the same oldest row and leave
        # one too many: the user's row is locked until commit. SQLite has one writer
        # at a time already, and the DELETE below is this transaction's write. FOR NO
        # KEY UPDATE, as devices.mint takes: it still serialises two logins of the
        # user, without conflicting with the KEY SHARE a new logins row takes.
        await session.execute(
            select(User.id).where(User.id == user_id).with_for_update(key_share=True)
        )
    keep = config.logins_per_user_max - 1
    older = (
        select(Login.id)
        .where(Login.user_id == user_id)
        .order_by(Login.created_at.desc(), Login.id.desc())
        .offset(keep)
    )
    result = await session.execute(delete(Login).where(Login.id.in_(older.scalar_subquery())))
    return int(getattr(result, "rowcount", 0) or 0)


# Built once: SQLAlchemy caches the compiled form of a statement object, and this one
# runs on every logged-in request that the cache cannot answer.
_FIND = (
    select(User.id, User.username, Login.remember, Login.last_seen, Login.expires_at)
    .join(User, User.id == Login.user_id)
    .where(Login.id == bindparam("login_id"))
)
_DELETE = delete(Login).where(Login.id == bindparam("login_id"))


@dataclass(frozen=True, slots=True)
class Record:
    """What a live login's row says: who, and the facts its limits are judged on."""

    user: CurrentUser
    remember: bool
    last_seen: float
    expires_at: float

    def expired(self, config: AuthSettings, now: float) -> bool:
        """Past its absolute limit, or unused for longer than its idle limit."""
        idle = now - self.last_seen > idle_limit(config, remember=self.remember)
        return now >= self.expires_at or idle

    def stale(self, now: float) -> bool:
        """Whether ``last_seen`` is old enough to be written again."""
        return now - self.last_seen >= SEEN_RESOLUTION


async def find_record(
    connection: AsyncConnection, config: AuthSettings, login_id: str, *, seen: float | None = None
) -> tuple[Status, Record | None, bool]:
    """Look a login up by its id: its status, its record when live, and whether this
    wrote to the database.

    ``seen``: when this process last saw the login use, if that is not written yet
    (:mod:`.last_seen`); the row's ``last_seen`` may lag it. An expired row is deleted
    on the spot (committed here); ``last_seen`` is never written here: the caller notes
    a stale one for the next batch.
    """
    row = (await connection.execute(_FIND, {"login_id": login_id})).first()
    if row is None:
        return Status.UNKNOWN, None, False
    user_id, username, remember, last_seen, expires_at = row
    if seen is not None and seen > last_seen:
        last_seen = seen
    record = Record(CurrentUser(user_id, username, login_id), remember, last_seen, expires_at)
    if record.expired(config, time.time()):
        await connection.execute(_DELETE, {"login_id": login_id})
        await connection.commit()
        return Status.EXPIRED, None, True
    return Status.VALID, record, False


async def end(session: AsyncSession, token: str) -> None:
    """Forget one login by its cookie token, so the cookie logs nobody in (commits).

    What features keep for that login (an unconfirmed TOTP key) goes with it, in the
    same transaction (the registry's ``logins_ending``).
    """
    login_id = digest(token)
    user_id = await session.scalar(
        delete(Login).where(Login.id == login_id).returning(Login.user_id)
    )
    if user_id is not None:
        await registry.logins_ending(session, user_id, login_id)
    await session.commit()


async def end_one(session: AsyncSession, user_id: int, login_id: str) -> bool:
    """End one of the user's logins by its row id (no commit); whether it was live."""
    ended = await session.scalar(
        delete(Login).where(Login.id == login_id, Login.user_id == user_id).returning(Login.id)
    )
    if ended is not None:
        await registry.logins_ending(session, user_id, login_id)
    return ended is not None


async def end_all(session: AsyncSession, user_id: int, *, keep: str | None = None) -> int:
    """End a user's logins, except the one whose id is ``keep`` (no commit); how many.

    Features end what belongs to them in the same transaction (the registry's
    ``logins_ending``, with no login id): half-done sign-ins, whose password may be the
    one just changed, and unconfirmed TOTP keys, the kept login's included.
    """
    await registry.logins_ending(session, user_id, None)
    query = delete(Login).where(Login.user_id == user_id)
    if keep is not None:
        query = query.where(Login.id != keep)
    result = await session.execute(query)
    return int(getattr(result, "rowcount", 0) or 0)


async def prune(session: AsyncSession, config: AuthSettings, *, batch: int = PRUNE_BATCH) -> int:
    """Delete up to ``batch`` logins past their absolute limit (commits); how many.

    A login that only went idle is kept until then (12 hours at most without "remember
    me"; a remembered one's idle limit is its lifetime): its browser, coming back,
    finds the row and is told the session expired, while a token the table does not
    know means the login was ended elsewhere (``auth.ended_message``). The sessions
    page and every lookup still judge both limits. Bounded, so a prune never holds a
    long lock: callers repeat it while it is full.
    """
    expired = Login.expires_at <= time.time()
    ids = select(Login.id).where(expired).limit(batch).scalar_subquery()
    result = await session.execute(delete(Login).where(Login.id.in_(ids)))
    await session.commit()
    return int(getattr(result, "rowcount", 0) or 0)


async def rotate(
    session: AsyncSession,
    config: AuthSettings,
    login_id: str,
    *,
    address: str | None,
    user_agent: str | None,
) -> str | None:
    """Replace a login by a new one with a new token, keeping its limits (no commit).

    After a password change the login that made it goes on, but under a token that
    was never in a cookie before, as Django's ``update_session_auth_hash`` does. The
    login keeps its start, its "remember me" and its absolute expiry. None when the
    login is gone (ended by another request meanwhile).
    """
    old = await session.get(Login, login_id)
    if old is None:
        return None
    await session.delete(old)
    return await start(
        session,
        config,
        old.user_id,
        remember=old.remember,
        address=address,
        user_agent=user_agent,
        continues=old,
    )
