"""A per-process cache of live login rows, for the check every logged-in request makes.

:mod:`.logins` owns the rows and their limits; this module only avoids reading the
same unchanged row again, without losing the immediacy of reading it (see
:class:`Cache`). ``auth.load_logged_in_user`` calls :func:`lookup`.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Mapping
from typing import Any

from quart import Quart, current_app
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from .logins import CurrentUser, Record, Status, digest, find_record


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
    """:func:`.logins.find_record`, answered from ``cache`` while the database has not changed.

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
        status, record, wrote = await find_record(connection, config, login_id)
    if record is None:
        cache.forget(login_id)
    elif version is not None and not wrote:
        # After a write of last_seen the version has moved on, and another commit may
        # have slipped in beside it: the next request reads the row again instead.
        cache.put(version, login_id, record)
    return status, record.user if record is not None else None


EXTENSION = "quartapp.login_cache"


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
