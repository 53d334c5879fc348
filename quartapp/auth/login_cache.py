"""A per-process cache of live login rows, for the check every logged-in request makes.

:mod:`.logins` owns the rows and their limits; this module only avoids reading the
same unchanged row again, without losing the immediacy of reading it (see
:class:`Cache`). ``auth.load_logged_in_user`` calls :func:`lookup`.

One design for both databases: the cache is trusted only while something tells it of
every change to the rows, and each change drops what it made stale.

- SQLite: ``PRAGMA data_version`` on a probe connection of our own moves whenever any
  other connection commits; every lookup reads it (a few microseconds, the WAL index
  in shared memory). A move makes the probe read a counter that triggers bump only
  when a login ends or changes (revision 0012), and only a moved counter empties the
  cache (:class:`SqliteVersion`).
- PostgreSQL: triggers on ``logins`` (revision 0004) ``NOTIFY`` the ids of ended rows
  in the transaction that ends them; one listening connection per process drops those
  ids, and while it is not connected the cache is empty and bypassed
  (:mod:`.login_listener`).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any, cast

from quart import Quart, current_app
from sqlalchemy.engine import make_url

from .. import settings
from ..db import Store
from . import login_listener
from .last_seen import Pending
from .logins import CurrentUser, Record, Status, digest, find_record
from .settings import AuthSettings


class Cache:
    """This process's copy of live login rows, trusted only while it hears of every change.

    ``stamp()`` says whether the cache may answer now and, if so, as of which
    generation. A record read from the database is kept only if no change was heard
    between the stamp taken before the read and the ``put`` after it, so a row read
    just before it was ended cannot slip back in after its notification.
    """

    MAX_RECORDS = 10_000
    # Seconds to wait for news of a change this process made (see expect()) before
    # trusting the cache again anyway: the change was rolled back, or never notified.
    EXPECT_TIMEOUT = 1.0

    def __init__(self, poll: Callable[[], None] | None = None) -> None:
        self._records: dict[str, Record] = {}
        self._generation = 0
        self._trusted = False
        # Changes this process made whose news is still on its way:
        # sender -> [notifications still to come, deadline].
        self._expected: dict[int, list[float]] = {}
        # Called on every stamp(): a source that must be asked (SQLite's counter).
        self.poll = poll
        # Lookups answered from here, and lookups that read the database (tests and
        # diagnostics read them; they are this process's own).
        self.hits = 0
        self.misses = 0

    def stamp(self) -> int | None:
        """The generation the cache is valid for now, or None if it cannot be trusted."""
        if self.poll is not None:
            self.poll()
        if self._expected:
            now = time.monotonic()
            self._expected = {k: v for k, v in self._expected.items() if v[1] > now}
            if self._expected:
                return None
        return self._generation if self._trusted else None

    def expect(self, sender: int, notifications: int = 1) -> None:
        """This process changed rows through ``sender``: answer nothing until it is heard.

        Otherwise the next request here could beat the news of its own change.
        """
        self._generation += 1
        waiting = self._expected.setdefault(sender, [0, 0.0])
        waiting[0] += notifications
        waiting[1] = time.monotonic() + self.EXPECT_TIMEOUT

    def heard(self, sender: int) -> None:
        """A notification from ``sender`` has arrived (after :meth:`drop` applied it)."""
        waiting = self._expected.get(sender)
        if waiting is not None:
            waiting[0] -= 1
            if waiting[0] <= 0:
                del self._expected[sender]

    @property
    def trusted(self) -> bool:
        """Whether something is telling the cache of every change right now."""
        return self._trusted

    def get(self, login_id: str) -> Record | None:
        """The cached record, valid as of the last :meth:`stamp` call."""
        return self._records.get(login_id)

    def put(self, stamp: int, login_id: str, record: Record) -> None:
        """Keep ``record``, read after :meth:`stamp` returned ``stamp``.

        Kept only if nothing has changed since: a record read across a change might be
        older than that change.
        """
        if not self._trusted or stamp != self._generation:
            return
        if len(self._records) >= self.MAX_RECORDS:
            self._records.clear()
        self._records[login_id] = record

    def forget(self, login_id: str) -> None:
        """Drop one record (this process found that login ended or expired)."""
        self._records.pop(login_id, None)

    def drop(self, login_ids: Iterable[str] | None) -> None:
        """Those logins changed (None: any may have); drop them, refuse reads in flight."""
        self._generation += 1
        if login_ids is None:
            self._records.clear()
            return
        for login_id in login_ids:
            self._records.pop(login_id, None)

    def trust(self, trusted: bool) -> None:
        """Start or stop trusting the cache; either way it starts again empty."""
        self.drop(None)
        self._expected.clear()
        self._trusted = trusted

    def __len__(self) -> int:
        return len(self._records)


class SqliteVersion:
    """Keeps a cache in step with a SQLite file: ``PRAGMA data_version``, then a counter.

    Any commit by another connection, in this process or another, moves the file's
    ``data_version``: a logout or ``users revoke-sessions``, but also a ``last_seen``
    write, a throttle counter, mail. A move alone empties nothing: the probe then reads
    ``login_changes.counter``, which triggers (revision 0012) bump only for changes that
    can end or alter a cached login (a deleted row, a changed user, "remember me" or
    expiry), and the cache is emptied only when that moved. So the batched ``last_seen``
    writes of every process leave every cache warm, whatever the number of users.

    The probe has no busy timeout: should it ever meet a lock it raises at once, and
    the cache is bypassed for that lookup rather than stall the event loop. A database
    without the counter (not yet upgraded) bypasses the cache the same way.
    """

    COUNTER = "SELECT counter FROM login_changes WHERE id = 1"

    def __init__(self, cache: Cache, path: str) -> None:
        self._cache = cache
        self._version: int | None = None
        self._changes: int | None = None
        # Autocommit (isolation_level=None): the probe never holds a read transaction
        # open, which would freeze what data_version sees.
        self._probe: sqlite3.Connection | None = sqlite3.connect(
            path, isolation_level=None, timeout=0, check_same_thread=False
        )
        cache.poll = self.poll

    def poll(self) -> None:
        """Read the version, and the counter when it moved; empty the cache if that moved.

        The version is read before the counter: a change committed between the two
        reads moves the version again, so the next poll reads the counter again.
        """
        if self._probe is None:
            return
        try:
            version = self._probe.execute("PRAGMA data_version").fetchone()[0]
            if version == self._version:
                return
            row = self._probe.execute(self.COUNTER).fetchone()
        except sqlite3.Error:
            row = None
        if row is None:
            # Locked, or no counter to read: distrust, and read both again next time.
            self._version = self._changes = None
            self._cache.trust(False)
            return
        self._version = version
        if row[0] != self._changes or not self._cache.trusted:
            self._changes = row[0]
            self._cache.trust(True)

    def close(self) -> None:
        """Close the probe connection."""
        if self._probe is not None:
            self._probe.close()
            self._probe = None


async def lookup(
    store: Store,
    cache: Cache,
    config: AuthSettings,
    token: str,
    seen: Pending,
    *,
    fresh: bool = False,
) -> tuple[Status, CurrentUser | None]:
    """:func:`.logins.find_record`, answered from ``cache`` while it can be trusted.

    ``fresh``: read the row whatever the cache holds (a request that changes state).
    A cached record is judged against the limits here, as a fresh row would be; one
    that has expired goes to the database. A ``last_seen`` due to be written (a minute
    old) is noted in ``seen`` for the next background batch, and the cached record
    moves forward with it: no request waits on that write.
    """
    login_id = digest(token)
    stamp = cache.stamp()
    if stamp is not None and not fresh:
        record = cache.get(login_id)
        if record is not None:
            now = time.time()
            if not record.expired(config, now):
                cache.hits += 1
                if record.stale(now):
                    seen.note(login_id, now)
                    cache.put(stamp, login_id, replace(record, last_seen=now))
                return Status.VALID, record.user
    cache.misses += 1

    async def read(connection: Any) -> tuple[Status, Record | None, bool]:
        return await find_record(connection, config, login_id, seen=seen.get(login_id))

    status, record, _wrote = await store.read(read)
    if record is None:
        cache.forget(login_id)
        return status, None
    now = time.time()
    if record.stale(now):
        seen.note(login_id, now)
        record = replace(record, last_seen=now)
    if stamp is not None:
        cache.put(stamp, login_id, record)
    return status, record.user


EXTENSION = "quartapp.login_cache"


def init_app(app: Quart) -> None:
    """Open this process's login cache when the app starts serving; close it after."""
    app.before_serving(_open_cache)
    app.after_serving(_close_cache)


def sqlite_path(database_url: str) -> str | None:
    """The file a SQLite URL names, when a probe can watch it (not memory, no options)."""
    url = make_url(database_url)
    path = url.database
    if url.get_backend_name() == "sqlite" and path and path != ":memory:" and not url.query:
        return path
    return None


async def _open_cache() -> None:
    cache = Cache()
    current_app.extensions[EXTENSION] = cache
    path = sqlite_path(settings.current().sqlalchemy_database_url)
    if path is not None:
        current_app.extensions[EXTENSION + ".sqlite"] = SqliteVersion(cache, path)
    else:
        await login_listener.start(current_app, cache)


async def _close_cache() -> None:
    await login_listener.stop(current_app)
    version = current_app.extensions.pop(EXTENSION + ".sqlite", None)
    if version is not None:
        version.close()
    cache = current_app.extensions.pop(EXTENSION, None)
    if cache is not None:
        cache.trust(False)


def cache() -> Cache:
    """The current app's login cache."""
    return cast(Cache, current_app.extensions[EXTENSION])
