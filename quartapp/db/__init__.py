"""The database: SQLAlchemy's asyncio engine, the tables, and their lifecycle.

The engine is opened when the app starts serving (hypercorn's lifespan, or
``app.test_app()``) and disposed when it stops, so it always belongs to the event loop
that uses it. CLI commands open their own with :func:`connect`.

- ``models``: the declarative ``Base`` every feature's tables use (``<feature>/models.py``),
  and the sizes of shared columns;
- ``passkeys``: the passkeys' tables (``Passkey``, ``PasskeyChallenge``);
- ``schema``: Alembic migrations, run by ``db upgrade`` and, in development, at startup.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar, cast
from uuid import uuid4

from quart import Quart, current_app
from sqlalchemy import event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import NullPool

from .. import settings
from ..settings import Settings
from . import onetrip
from .models import (
    ADDRESS_COLUMN,
    USER_AGENT_COLUMN,
    USERNAME_COLUMN,
    Base,
    utcnow,
)

__all__ = [
    "ADDRESS_COLUMN",
    "EXTENSION",
    "USERNAME_COLUMN",
    "USER_AGENT_COLUMN",
    "Base",
    "Database",
    "Store",
    "connect",
    "db",
    "engine_options",
    "open_store",
    "prepare_sqlite_file",
    "utcnow",
]

EXTENSION = "quartapp.db"
T = TypeVar("T")


class Store:
    """An open engine, the session factory bound to it, and a way to run one read."""

    def __init__(self, engine: AsyncEngine, *, autocommit_reads: bool = False) -> None:
        self.engine = engine
        self.sessionmaker = async_sessionmaker(engine, expire_on_commit=False)
        # On PostgreSQL a single read needs no transaction: in autocommit asyncpg sends
        # the statement alone, where a transaction would add BEGIN and ROLLBACK (two
        # more round trips). The option engine shares the pool; the setting is applied
        # to the connection locally, without a round trip. SQLite's driver opens no
        # transaction for a SELECT, and switching its mode would cost a thread hop.
        self.reader = (
            engine.execution_options(isolation_level="AUTOCOMMIT") if autocommit_reads else engine
        )

    async def read(self, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        """Run ``work`` on a connection of ``reader``; again once if that one was dead.

        A pooled connection can die unnoticed (the server restarted, or a proxy dropped
        it). Rather than test every connection before use (a round trip on every
        request), a statement that finds its connection gone invalidates it, and the
        work runs once more on a new one. ``work`` must be safe to repeat: a read, or
        writes that are idempotent.
        """
        try:
            async with self.reader.connect() as connection:
                return await work(connection)
        except DBAPIError as error:
            if not error.connection_invalidated:
                raise
        async with self.reader.connect() as connection:
            return await work(connection)

    async def ping(self) -> None:
        """Run a trivial query; raises if the database does not answer."""

        async def select_one(connection: AsyncConnection) -> None:
            await connection.execute(text("SELECT 1"))

        await self.read(select_one)


def engine_options(config: Settings) -> tuple[URL, dict[str, Any]]:
    """The URL and ``create_async_engine`` options that the settings ask for."""
    url = make_url(config.sqlalchemy_database_url)
    options: dict[str, Any] = {"echo": config.database_echo}
    if url.get_backend_name() == "sqlite":
        # A file on this machine: nothing can drop the connection, so no pre-ping (it
        # would cost a query on every checkout). The timeout is how long a writer waits
        # for another worker's write to finish.
        options["connect_args"] = {"timeout": config.database_statement_timeout}
        return url, options
    connect_args: dict[str, Any] = {
        "timeout": config.database_connect_timeout,
        "command_timeout": config.database_statement_timeout,
        "server_settings": {"application_name": "quartapp"},
    }
    if config.database_pgbouncer:
        # PgBouncer in transaction mode hands each transaction any server connection,
        # where a statement prepared on another one does not exist: prepare nothing
        # that outlives a statement, and let PgBouncer do the pooling.
        connect_args["statement_cache_size"] = 0
        connect_args["prepared_statement_cache_size"] = 0
        connect_args["prepared_statement_name_func"] = _unique_statement_name
        options["poolclass"] = NullPool
    else:
        options.update(
            pool_size=config.database_pool_size,
            max_overflow=config.database_max_overflow,
            pool_timeout=config.database_pool_timeout,
            # No pre-ping: it cost BEGIN, a query and ROLLBACK on every checkout. A
            # connection the server closed is noticed locally when it is drawn (see
            # _refuse_closed), and one that died unnoticed fails its statement, which
            # Store.read repeats once on a new connection.
            pool_pre_ping=False,
        )
    options["connect_args"] = connect_args
    return url, options


def _unique_statement_name() -> str:
    return f"__quartapp_{uuid4().hex}__"


def open_store(config: Settings) -> Store:
    """Create the engine for ``SQLALCHEMY_DATABASE_URL`` (no connection is made yet)."""
    url, options = engine_options(config)
    if url.get_backend_name() == "sqlite":
        prepare_sqlite_file(url)
        options.update(
            pool_size=config.database_pool_size,
            max_overflow=config.database_max_overflow,
            pool_timeout=config.database_pool_timeout,
        )
    engine = create_async_engine(url, **options)
    if url.get_backend_name() == "sqlite":
        onetrip.use_one_trip(engine)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return Store(engine)
    event.listen(engine.sync_engine.pool, "checkout", _refuse_closed)
    # Behind PgBouncer in transaction mode a read keeps its transaction: asyncpg
    # prepares a statement in one exchange and runs it in the next, and outside a
    # transaction PgBouncer may hand the second to another server connection, where
    # the statement does not exist.
    return Store(engine, autocommit_reads=not config.database_pgbouncer)


def _refuse_closed(_dbapi_connection: Any, record: Any, _proxy: Any) -> None:
    # asyncpg marks a connection closed as soon as the event loop sees the server end
    # it (a restart, pg_terminate_backend, an idle timeout). Checking that flag costs
    # no round trip; raising here makes the pool replace the connection before use.
    driver = record.driver_connection
    if driver is not None and driver.is_closed():
        raise DisconnectionError("the server closed this pooled connection")


def prepare_sqlite_file(url: URL) -> None:
    """Create a SQLite database file readable by its owner only, in a private folder.

    SQLite creates its ``-wal`` and ``-shm`` files with the database file's mode, so
    making the file first, 0600, keeps all three private.
    """
    if not url.database or url.database == ":memory:":
        return
    path = Path(url.database)
    if not path.parent.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600))


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # SQLite ignores foreign keys (and so ON DELETE CASCADE) unless asked per connection;
    # WAL lets readers go on while one worker writes.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()


@asynccontextmanager
async def connect(config: Settings) -> AsyncIterator[Store]:
    """Open a store, for code that runs outside serving (the CLI)."""
    store = open_store(config)
    try:
        yield store
    finally:
        await store.engine.dispose()


class Database:
    """The app's database extension: opened at startup, closed at shutdown."""

    def init_app(self, app: Quart) -> None:
        """Open the store when the app starts serving and close it when it stops."""
        app.before_serving(self._open)
        app.after_serving(self._close)

    async def _open(self) -> None:
        current_app.extensions[EXTENSION] = open_store(settings.current())

    async def _close(self) -> None:
        store = current_app.extensions.pop(EXTENSION, None)
        if store is not None:
            await store.engine.dispose()

    @property
    def store(self) -> Store:
        """The current app's open store."""
        try:
            return cast(Store, current_app.extensions[EXTENSION])
        except KeyError:
            raise RuntimeError(
                "the database is not open; serve the app (or use app.test_app())"
            ) from None

    def session(self) -> AsyncSession:
        """A new session for one unit of work: ``async with db.session() as s``."""
        return self.store.sessionmaker()


db = Database()
