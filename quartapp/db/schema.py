"""The schema's migrations: Alembic, driven from ``quart --app quartapp db ...``.

``migrations/`` holds the revisions (Flask-Migrate's layout); the models in
:mod:`quartapp.db` are the source of truth and a test checks that the two agree.
Upgrades take a lock first, so workers starting together, or a release step racing a
developer's server, apply each revision once: PostgreSQL's advisory lock, or SQLite's
``BEGIN IMMEDIATE``, which also makes SQLite's DDL transactional.

Where the web never migrates (production), it checks instead: a database whose
revision is behind the code's would serve 500s on every page that needs a newer table,
so the web line refuses to start, in one line naming the release step
(:func:`check_on_start`). That check and ``/healthz`` read the revisions without Alembic
(:mod:`.revisions`), so a served worker never imports it: Alembic is imported here only
inside the functions that migrate.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from quart import Quart
from sqlalchemy import Connection, event, inspect, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from .. import settings
from ..settings import ROOT, ConfigError, Settings
from . import engine_options, prepare_sqlite_file, revisions

if TYPE_CHECKING:
    from alembic.config import Config

log = logging.getLogger("quartapp.schema")  # the pre-move name, kept for log filters

MIGRATIONS = ROOT / "migrations"
# The revision that matches the tables quartapp made with ``create_all`` before it had
# migrations: such a database is stamped with it, then upgraded like any other.
BASELINE = "0001"
LEGACY_TABLES = frozenset({"users", "logins", "login_failures"})
# Any fixed number will do; it only has to be the same in every process.
ADVISORY_LOCK = 0x71756172
# The release step, as the Procfile's release line runs it.
RELEASE_STEP = "quart --app quartapp db upgrade"
# A database that does not answer within this is not checked: the app serves 503s until
# it answers, as it always has, and /healthz reports the revision then.
CHECK_TIMEOUT = 15.0
T = TypeVar("T")


class MigrationError(Exception):
    """Alembic refused what it was asked (an unknown revision, say): its message."""


def alembic_config(connection: Connection | None = None) -> Config:
    """Alembic's settings for ``migrations/``, bound to ``connection`` when given."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    config.attributes["connection"] = connection
    return config


def head() -> str:
    """The newest revision, the one the models describe."""
    return revisions.head()


def _migration_engine(config: Settings) -> AsyncEngine:
    url, options = engine_options(config)
    options.pop("poolclass", None)
    if url.get_backend_name() != "sqlite":
        return create_async_engine(url, **options)
    prepare_sqlite_file(url)
    engine = create_async_engine(url, **options)

    # Foreign keys stay off here (SQLite ignores the pragma inside a transaction, and a
    # table rebuilt by a batch migration must not cascade deletes into its children).
    # The driver's own transaction handling is replaced by BEGIN IMMEDIATE, which takes
    # the write lock at once, so concurrent upgrades queue instead of interleaving.
    @event.listens_for(engine.sync_engine, "connect")
    def _manual_transactions(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None

    @event.listens_for(engine.sync_engine, "begin")
    def _begin_immediate(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


async def _run(config: Settings, work: Callable[[Connection], T]) -> T:
    """Run ``work`` in one locked transaction on a connection of its own."""
    from alembic.util import CommandError

    engine = _migration_engine(config)
    try:
        async with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                await connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK}
                )
            return await connection.run_sync(work)
    except CommandError as error:
        raise MigrationError(str(error)) from None
    finally:
        await engine.dispose()


def _stamp_legacy(connection: Connection) -> bool:
    """Stamp a database that ``create_all`` made before migrations; True if it was one."""
    tables = set(inspect(connection).get_table_names())
    if revisions.VERSION_TABLE in tables or not tables >= LEGACY_TABLES:
        return False
    from alembic import command

    command.stamp(alembic_config(connection), BASELINE)
    return True


current_revision = revisions.current_revision
read_revision = revisions.read_revision


async def upgrade(config: Settings, revision: str = "head") -> tuple[str | None, str]:
    """Upgrade to ``revision``; returns the revisions before and after."""
    if revision == "head":
        # Already there, as at every development start but the first after a change
        # (and for every app a test builds): Alembic would load env.py and run every
        # script to build its map, only to find nothing to do, about 10 ms a time. A
        # database behind takes the locked path below, which reads it again under the
        # lock, so workers starting together still apply each revision once.
        at = await _unlocked_revision(config)
        if at == head():
            return at, at

    def work(connection: Connection) -> tuple[str | None, str]:
        from alembic import command

        if _stamp_legacy(connection):
            log.warning("found tables made before migrations; stamped them as %s", BASELINE)
        before = current_revision(connection)
        command.upgrade(alembic_config(connection), revision)
        return before, current_revision(connection) or "base"

    return await _run(config, work)


async def downgrade(config: Settings, revision: str) -> tuple[str | None, str]:
    """Downgrade to ``revision`` (``-1`` for one step, ``base`` for none)."""

    def work(connection: Connection) -> tuple[str | None, str]:
        from alembic import command

        before = current_revision(connection)
        command.downgrade(alembic_config(connection), revision)
        return before, current_revision(connection) or "base"

    return await _run(config, work)


async def revision(config: Settings, message: str) -> str:
    """Write a new revision from the difference between the models and the database.

    The database must be at the newest revision first; the file lands in
    ``migrations/versions/`` for review, like any code.
    """

    def work(connection: Connection) -> str:
        from alembic import command

        number = f"{int(head()) + 1:04d}"
        script = command.revision(
            alembic_config(connection), message=message, autogenerate=True, rev_id=number
        )
        assert script is not None
        assert not isinstance(script, list)
        return str(script.path)

    return await _run(config, work)


async def current(config: Settings) -> str | None:
    """The database's revision, without changing anything."""
    return await _run(config, current_revision)


def behind(revision: str | None) -> str | None:
    """Why a database at ``revision`` is too old for this code, or None when it is not.

    Behind means a revision of ours older than the head, or none at all. A revision this
    code does not know is newer code's (a rollback after a release): the release steps
    add tables and columns, which older code does not read, so it serves.
    """
    code = head()
    if revision == code:
        return None
    if revision is not None and revision not in revisions.known():
        log.warning(
            "the database is at revision %s, which this code does not know (its newest is %s)",
            revision,
            code,
        )
        return None
    state = (
        f"the database's schema is at revision {revision}"
        if revision
        else "the database has no schema yet"
    )
    return (
        f"{state}, behind this code's {code}; run the release step first: "
        f"`{RELEASE_STEP}` (the Procfile's release line)"
    )


async def _unlocked_revision(config: Settings) -> str | None:
    """The database's revision, read on an engine of its own: no lock (a release may
    hold it), no pool kept."""
    url, options = engine_options(config)
    options.pop("poolclass", None)
    if url.get_backend_name() == "sqlite":
        prepare_sqlite_file(url)
    engine = create_async_engine(url, **options)
    try:
        async with engine.connect() as connection:
            return await read_revision(connection)
    finally:
        await engine.dispose()


async def check_revision(config: Settings) -> None:
    """Refuse (``ConfigError``) a schema behind the code where the web does not migrate.

    Only in production with ``DATABASE_AUTO_UPGRADE`` off: development upgrades at
    start instead. A database that does not answer is not refused here: the app serves
    503s until it does, as during any outage.
    """
    if config.database_auto_upgrade or not config.production:
        return
    try:
        async with asyncio.timeout(CHECK_TIMEOUT):
            revision = await _unlocked_revision(config)
    except (SQLAlchemyError, OSError, TimeoutError) as error:
        log.warning("could not read the database's schema revision at start: %s", error)
        return
    reason = behind(revision)
    if reason is not None:
        raise ConfigError(reason)


def check_on_start(config: Settings) -> None:
    """:func:`check_revision` outside an event loop: the web line's startup check."""
    asyncio.run(check_revision(config))


async def upgrade_on_start() -> None:
    """``before_serving``: apply pending migrations when ``DATABASE_AUTO_UPGRADE`` is on.

    It is on in development, so ``make run`` needs no migration step; production runs
    ``db upgrade`` in the Procfile's release phase instead, once per deploy, and a
    worker refuses to start on a schema behind the code (:func:`check_revision`).
    """
    config = settings.current()
    if not config.database_auto_upgrade:
        await check_revision(config)
        return
    before, after = await upgrade(config)
    if before != after:
        log.info("database schema upgraded from %s to %s", before or "empty", after)


def init_app(app: Quart) -> None:
    """Upgrade the schema at startup, before the database extension opens its pool."""
    app.before_serving(upgrade_on_start)
