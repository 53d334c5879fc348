"""Logins: the server-side record of each one, its expiry, and pruning.

The session cookie holds only a random token; the ``logins`` row holds its SHA-256,
the limits and what the sessions page shows. Every request that carries a token looks
its row up (:func:`find`), so ending a login anywhere (logout, a password change,
``users revoke-sessions``, deleting the user) takes effect on the next request, in
every worker, and an expired row is refused whatever the cookie says.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sqlite3
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from quart import Quart, current_app
from sqlalchemy import ColumnElement, and_, bindparam, delete, or_, select, update
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from .db import ADDRESS_COLUMN, USER_AGENT_COLUMN, Login, User

# last_seen is written when it is at least this old, so a busy reader writes once a
# minute rather than on every request; a 30-minute idle limit loses nothing by it.
SEEN_RESOLUTION = 60
PRUNE_BATCH = 500
# Domain separation for the ids the sessions page shows (see public_id): the
# SECRET_KEY also signs the session cookies.
_PUBLIC_ID_CONTEXT = b"quartapp.logins.public-id\0"


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


def idle_limit(config: Mapping[str, Any], *, remember: bool) -> int:
    """Seconds a login may go unused: a remembered one lasts as long as it lives."""
    if remember:
        return int(config["REMEMBER_ME_DAYS"]) * 86400
    return int(config["SESSION_IDLE_MINUTES"]) * 60


def lifetime(config: Mapping[str, Any], *, remember: bool) -> int:
    """Seconds a login lives at most, however active."""
    if remember:
        return int(config["REMEMBER_ME_DAYS"]) * 86400
    return int(config["SESSION_MAX_HOURS"]) * 3600


async def start(
    session: AsyncSession,
    config: Mapping[str, Any],
    user_id: int,
    *,
    remember: bool,
    address: str | None,
    user_agent: str | None,
    continues: Login | None = None,
) -> str:
    """Add a login row (the caller commits) and return the token for the cookie.

    ``continues``: a login this one replaces (see :func:`rotate`), whose start and
    absolute expiry it keeps.
    """
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
    )
    if continues is not None:
        login.created_at = continues.created_at
        login.expires_at = continues.expires_at
    session.add(login)
    return token


# Built once: SQLAlchemy caches the compiled form of a statement object, and this one
# runs on every logged-in request that the cache cannot answer.
_FIND = (
    select(User.id, User.username, Login.remember, Login.last_seen, Login.expires_at)
    .join(User, User.id == Login.user_id)
    .where(Login.id == bindparam("login_id"))
)
_TOUCH = update(Login).where(Login.id == bindparam("login_id")).values(last_seen=bindparam("now"))
_DELETE = delete(Login).where(Login.id == bindparam("login_id"))


@dataclass(frozen=True, slots=True)
class Record:
    """What a live login's row says: who, and the facts its limits are judged on."""

    user: CurrentUser
    remember: bool
    last_seen: float
    expires_at: float

    def expired(self, config: Mapping[str, Any], now: float) -> bool:
        """Past its absolute limit, or unused for longer than its idle limit."""
        idle = now - self.last_seen > idle_limit(config, remember=self.remember)
        return now >= self.expires_at or idle

    def stale(self, now: float) -> bool:
        """Whether ``last_seen`` is old enough to be written again."""
        return now - self.last_seen >= SEEN_RESOLUTION


async def find(
    connection: AsyncConnection, config: Mapping[str, Any], token: str
) -> tuple[Status, CurrentUser | None]:
    """Look a session's token up: the user if the login is live, else why not.

    An expired row is deleted on the spot. ``last_seen`` is refreshed when it is a
    minute old. Both writes are committed here.
    """
    status, record, _ = await _find_record(connection, config, digest(token))
    return status, record.user if record is not None else None


async def _find_record(
    connection: AsyncConnection, config: Mapping[str, Any], login_id: str
) -> tuple[Status, Record | None, bool]:
    """The row's status and record, and whether this wrote to the database."""
    row = (await connection.execute(_FIND, {"login_id": login_id})).first()
    if row is None:
        return Status.UNKNOWN, None, False
    user_id, username, remember, last_seen, expires_at = row
    record = Record(CurrentUser(user_id, username, login_id), remember, last_seen, expires_at)
    now = time.time()
    if record.expired(config, now):
        await connection.execute(_DELETE, {"login_id": login_id})
        await connection.commit()
        return Status.EXPIRED, None, True
    if record.stale(now):
        await connection.execute(_TOUCH, {"login_id": login_id, "now": now})
        await connection.commit()
        return Status.VALID, Record(record.user, remember, now, expires_at), True
    return Status.VALID, record, False


class Cache:
    """This process's copy of live login rows, trusted only while the database is unchanged.

    On SQLite, ``PRAGMA data_version`` on a connection of our own changes whenever any
    other connection, in this process or another, commits. It is read on every lookup
    (a few microseconds: the WAL index in shared memory), and any change empties the
    cache. So a logout, ``users revoke-sessions``, a password change or a deleted user,
    committed anywhere, is seen by the very next request, as if it read the row. The
    probe connection has no busy timeout: should it ever meet a lock, it raises at once
    and the lookup goes to the database, so it cannot stall the event loop.

    Other databases have no such counter here; :meth:`version` answers None and every
    lookup reads the row.
    """

    MAX_RECORDS = 10_000

    def __init__(self, database_url: str) -> None:
        self._probe: sqlite3.Connection | None = None
        self._version: int | None = None
        self._records: dict[str, Record] = {}
        url = make_url(database_url)
        path = url.database
        if url.get_backend_name() == "sqlite" and path and path != ":memory:" and not url.query:
            # Autocommit (isolation_level=None): the probe never holds a read
            # transaction open, which would freeze what data_version sees.
            self._probe = sqlite3.connect(
                path, isolation_level=None, timeout=0, check_same_thread=False
            )

    def version(self) -> int | None:
        """The database's change counter now, having dropped records it made stale.

        None when it cannot be known (not SQLite, or the probe failed): trust nothing.
        """
        if self._probe is None:
            return None
        try:
            version = self._probe.execute("PRAGMA data_version").fetchone()[0]
        except sqlite3.Error:
            return None
        if version != self._version:
            self._records.clear()
            self._version = version
        return int(version)

    def get(self, login_id: str) -> Record | None:
        """The cached record, valid as of the last :meth:`version` call."""
        return self._records.get(login_id)

    def put(self, version: int, login_id: str, record: Record) -> None:
        """Keep ``record``, read after :meth:`version` returned ``version``.

        Kept only if nothing has changed since: a record read across a commit might
        be older than that commit.
        """
        if version != self._version:
            return
        if len(self._records) >= self.MAX_RECORDS:
            self._records.clear()
        self._records[login_id] = record

    def forget(self, login_id: str) -> None:
        """Drop one record (this process ended or expired that login)."""
        self._records.pop(login_id, None)

    def close(self) -> None:
        """Close the probe connection."""
        self._records.clear()
        if self._probe is not None:
            self._probe.close()
            self._probe = None


async def lookup(
    engine: AsyncEngine, cache: Cache, config: Mapping[str, Any], token: str
) -> tuple[Status, CurrentUser | None]:
    """:func:`find`, answered from ``cache`` while the database has not changed.

    A cached record is judged against the limits here, as a fresh row would be; one
    that has expired, or whose ``last_seen`` is due to be written, goes to the database.
    """
    login_id = digest(token)
    version = cache.version()
    if version is not None:
        record = cache.get(login_id)
        if record is not None:
            now = time.time()
            if not record.expired(config, now) and not record.stale(now):
                return Status.VALID, record.user
    async with engine.connect() as connection:
        status, record, wrote = await _find_record(connection, config, login_id)
    if record is None:
        cache.forget(login_id)
    elif version is not None and not wrote:
        # After a write of last_seen the version has moved on, and another commit may
        # have slipped in beside it: the next request reads the row again instead.
        cache.put(version, login_id, record)
    return status, record.user if record is not None else None


async def end(session: AsyncSession, token: str) -> None:
    """Forget one login by its cookie token, so the cookie logs nobody in (commits)."""
    await session.execute(delete(Login).where(Login.id == digest(token)))
    await session.commit()


async def end_all(session: AsyncSession, user_id: int, *, keep: str | None = None) -> int:
    """End a user's logins, except the one whose id is ``keep`` (no commit); how many."""
    query = delete(Login).where(Login.user_id == user_id)
    if keep is not None:
        query = query.where(Login.id != keep)
    result = await session.execute(query)
    return int(getattr(result, "rowcount", 0) or 0)


async def for_user(session: AsyncSession, user_id: int) -> Sequence[Login]:
    """A user's logins, newest first."""
    query = select(Login).where(Login.user_id == user_id).order_by(Login.created_at.desc())
    return (await session.execute(query)).scalars().all()


async def prune(
    session: AsyncSession, config: Mapping[str, Any], *, batch: int = PRUNE_BATCH
) -> int:
    """Delete up to ``batch`` logins past a limit (commits); returns how many.

    Bounded, so a prune never holds a long lock: callers repeat it while it is full.
    """
    now = time.time()
    idle_session = now - idle_limit(config, remember=False)
    idle_remembered = now - idle_limit(config, remember=True)
    expired = or_(
        Login.expires_at <= now,
        and_(Login.remember.is_(False), Login.last_seen <= idle_session),
        and_(Login.remember.is_(True), Login.last_seen <= idle_remembered),
    )
    ids = select(Login.id).where(expired).limit(batch).scalar_subquery()
    result = await session.execute(delete(Login).where(Login.id.in_(ids)))
    await session.commit()
    return int(getattr(result, "rowcount", 0) or 0)


EXTENSION = "quartapp.logins"


def init_app(app: Quart) -> None:
    """Open this process's login cache when the app starts serving; close it after."""
    app.before_serving(_open_cache)
    app.after_serving(_close_cache)


async def _open_cache() -> None:
    current_app.extensions[EXTENSION] = Cache(current_app.config["SQLALCHEMY_DATABASE_URL"])


async def _close_cache() -> None:
    cache = current_app.extensions.pop(EXTENSION, None)
    if cache is not None:
        cache.close()


def cache() -> Cache:
    """The current app's login cache."""
    return current_app.extensions[EXTENSION]


def live(config: Mapping[str, Any], now: float) -> ColumnElement[bool]:
    """The rows :func:`find` would accept at ``now``: within both limits."""
    return and_(
        Login.expires_at > now,
        or_(
            and_(
                Login.remember.is_(False),
                Login.last_seen >= now - idle_limit(config, remember=False),
            ),
            and_(
                Login.remember.is_(True),
                Login.last_seen >= now - idle_limit(config, remember=True),
            ),
        ),
    )


async def live_for_user(
    session: AsyncSession, config: Mapping[str, Any], user_id: int
) -> Sequence[Login]:
    """A user's live logins, newest first: what the sessions page lists."""
    query = (
        select(Login)
        .where(Login.user_id == user_id, live(config, time.time()))
        .order_by(Login.created_at.desc(), Login.id)
    )
    return (await session.execute(query)).scalars().all()


def public_id(config: Mapping[str, Any], login_id: str) -> str:
    """The id a page may show for a login: an HMAC of the row's id, not the id itself.

    The row's id is the SHA-256 of a live cookie's token; it is no token, but it stays
    out of pages and forms all the same. Keyed, so that no one can make the id of a
    login they have not been shown.
    """
    key = config["SECRET_KEY"]
    if isinstance(key, str):
        key = key.encode()
    mac = hmac.new(key, _PUBLIC_ID_CONTEXT + login_id.encode(), hashlib.sha256)
    return mac.hexdigest()[:32]


async def end_other(
    session: AsyncSession,
    config: Mapping[str, Any],
    user_id: int,
    public: str,
    *,
    keep: str,
) -> bool:
    """End the user's live login shown as ``public``, unless it is ``keep`` (commits).

    Only this user's logins are searched, so an id from someone else's page ends
    nothing. Returns whether a login was ended.
    """
    for login in await live_for_user(session, config, user_id):
        if login.id != keep and hmac.compare_digest(public_id(config, login.id), public):
            await session.execute(
                delete(Login).where(Login.id == login.id, Login.user_id == user_id)
            )
            await session.commit()
            return True
    return False


async def rotate(
    session: AsyncSession,
    config: Mapping[str, Any],
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
