"""PostgreSQL's side of the login cache: one listening connection per serving process.

Revision 0004's triggers ``NOTIFY quartapp_logins`` with the ids of the logins a
transaction ended (or ``*`` for all), delivered only if it commits. This process
keeps one raw asyncpg connection that ``LISTEN``\\ s on that channel and drops the
named rows from its :class:`.login_cache.Cache`.

The cache is trusted only while that connection is up and the triggers exist. When
the connection is lost the cache is emptied and bypassed (every request reads its
row) until a new connection is listening; a background task reconnects with backoff.
A connection that died without a word (a dropped network path) is caught by a
``SELECT 1`` every :data:`KEEPALIVE` seconds.

PgBouncer in transaction mode hands each transaction any server connection, so a
``LISTEN`` there hears nothing: with ``DATABASE_PGBOUNCER`` the cache is bypassed
unless ``DATABASE_LISTEN_URL`` names a direct connection to the same database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from typing import TYPE_CHECKING, Any

from quart import Quart
from sqlalchemy import event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.engine.default import DefaultExecutionContext

from .. import settings
from ..db import db
from ..settings import Settings, database_url
from . import last_seen

if TYPE_CHECKING:
    import asyncpg

    from .login_cache import Cache

log = logging.getLogger("quartapp.login_listener")  # the pre-move name, kept for log filters
CHANNEL = "quartapp_logins"
TRIGGERS = ("quartapp_logins_deleted", "quartapp_logins_updated", "quartapp_logins_truncated")
# Seconds between reconnection attempts: doubled after each failure, with jitter, so
# that every process of a deploy does not knock at once after a database restart.
RETRY_MIN, RETRY_MAX = 0.2, 10.0
# Seconds between checks that a quiet connection is still there.
KEEPALIVE = 10.0
APPLICATION_NAME = "quartapp-listener"
EXTENSION = "quartapp.login_listener"


def listen_url(config: Settings) -> str | None:
    """Where to LISTEN: ``DATABASE_LISTEN_URL``, else the database unless behind PgBouncer.

    None: nowhere (SQLite, or PgBouncer without a direct URL), and the cache stays off.
    """
    if config.database_listen_url:
        return database_url(config.database_listen_url)
    url = config.sqlalchemy_database_url
    if make_url(url).get_backend_name() != "postgresql" or config.database_pgbouncer:
        return None
    return str(url)


class Listener:
    """Holds the listening connection and keeps the cache's trust in step with it."""

    def __init__(self, cache: Cache, connect_args: dict[str, Any]) -> None:
        self._cache = cache
        self._connect_args = connect_args
        self._connection: asyncpg.Connection | None = None

    def poll(self) -> None:
        """Called on every lookup: a connection seen closed stops the cache at once."""
        connection = self._connection
        if connection is not None and connection.is_closed() and self._cache.trusted:
            self._cache.trust(False)

    async def run(self) -> None:
        """Listen, and listen again after every loss, until cancelled."""
        delay = RETRY_MIN
        while True:
            try:
                if await self._listen():
                    delay = RETRY_MIN
            except Exception as error:  # whatever it was, the cache is off: try again
                message = (str(error).splitlines() or [""])[0]
                log.warning(
                    "login cache: cannot listen for ended logins: %s: %s",
                    type(error).__name__,
                    message[:200],
                )
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))  # noqa: S311 - jitter
            delay = min(delay * 2, RETRY_MAX)

    async def _listen(self) -> bool:
        """One connection's life; returns whether the cache was trusted during it."""
        # Imported here: only PostgreSQL listens, and asyncpg would weigh on every
        # worker on SQLite too.
        import asyncpg

        connection = await asyncpg.connect(**self._connect_args)
        self._connection = connection
        lost = asyncio.Event()
        connection.add_termination_listener(lambda _connection: lost.set())
        try:
            await connection.add_listener(CHANNEL, self._notified)
            if not await _has_triggers(connection):
                log.warning(
                    "login cache: off until the database is upgraded (revision 0004 is "
                    "missing; run `quart --app quartapp db upgrade`)"
                )
                await asyncio.sleep(RETRY_MAX)
                return False
            self._cache.trust(True)
            log.info("login cache: listening for ended logins")
            while not lost.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(lost.wait(), KEEPALIVE)
                if not lost.is_set():
                    await connection.fetchval("SELECT 1")
            log.warning("login cache: the listening connection closed; reading every login")
            return True
        finally:
            self._cache.trust(False)
            self._connection = None
            if not connection.is_closed():
                connection.terminate()

    def _notified(self, _connection: Any, sender: int, _channel: str, payload: str) -> None:
        self._cache.drop(None if payload == "*" else payload.split(","))
        self._cache.heard(sender)

    def own_change(
        self,
        connection: Connection,
        cursor: Any,
        _statement: str,
        _parameters: Any,
        context: DefaultExecutionContext,
        _executemany: bool,
    ) -> None:
        """After each statement of this process: note a change whose news will follow.

        A DELETE of logins (or of users, whose logins go with them) sends its
        notification at commit, which reaches this process's listener a moment after
        the request that made it has answered. Until then the cache is not used, so
        the next request here cannot beat it. The batched last_seen write sends none.
        """
        statement = getattr(context.compiled, "statement", None)
        table = getattr(getattr(statement, "table", None), "name", None)
        if table not in ("logins", "users") or context.execution_options.get(last_seen.OPTION):
            return
        if not (context.isdelete or (context.isupdate and table == "logins")):
            return
        rows = cursor.rowcount
        if rows == 0:
            return
        driver = connection.connection.driver_connection
        if driver is not None:
            self._cache.expect(driver.get_server_pid(), notifications_for(rows))


def notifications_for(rows: int) -> int:
    """How many notifications revision 0004 sends for ``rows`` ended logins.

    Ids go 100 to a notification, and more than 1,000 as one ``*``. (Unknown or
    other counts: one; if fewer come, the cache's wait times out.)
    """
    if rows <= 0 or rows > 1000:
        return 1
    return -(-rows // 100)


async def _has_triggers(connection: asyncpg.Connection) -> bool:
    found = await connection.fetchval(
        "SELECT count(*) FROM pg_trigger WHERE tgrelid = to_regclass('logins') "
        "AND tgname = ANY($1::text[])",
        list(TRIGGERS),
    )
    return bool(found == len(TRIGGERS))


def connect_args(config: Settings, url: str) -> dict[str, Any]:
    """``asyncpg.connect`` arguments for ``url``, as SQLAlchemy's dialect reads URLs."""
    _, args = db.store.engine.dialect.create_connect_args(make_url(url))
    args.pop("prepared_statement_cache_size", None)
    return {
        **args,
        "timeout": config.database_connect_timeout,
        "command_timeout": config.database_statement_timeout,
        "server_settings": {"application_name": APPLICATION_NAME},
    }


async def start(app: Quart, cache: Cache) -> None:
    """Start listening in the background, if this database can tell us of changes."""
    site = settings.of(app)
    url = listen_url(site)
    if url is None:
        if site.database_pgbouncer:
            log.info("login cache: off behind PgBouncer (set DATABASE_LISTEN_URL to use it)")
        return
    listener = Listener(cache, connect_args(site, url))
    cache.poll = listener.poll
    engine = db.store.engine.sync_engine
    event.listen(engine, "after_cursor_execute", listener.own_change)
    app.extensions[EXTENSION] = (engine, listener, asyncio.create_task(listener.run()))


async def stop(app: Quart) -> None:
    """Stop listening and close the connection."""
    started = app.extensions.pop(EXTENSION, None)
    if started is None:
        return
    # The database may be closed already: after_serving hooks run in the order added.
    engine, listener, task = started
    event.remove(engine, "after_cursor_execute", listener.own_change)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
