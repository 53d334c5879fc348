"""Shared fixtures: a fresh app on a real database, its clients, and helpers.

A test that takes ``settings`` (and so ``app``, ``client``, ``runner``, ``auth``) runs
on a SQLite file. It runs on a real PostgreSQL too (marked ``postgres``) when it is
marked ``both_databases``: the rule is that a test runs on both only when its outcome
can depend on the database, i.e. it touches SQL, transactions, the throttle, logins,
devices, migrations or outages. Pure rendering, headers, forms, host checks, settings,
keys, CSRF mechanics, messages, redirects and parser fuzzing run on SQLite alone. Mark
each test with ``@BOTH_DATABASES``, one for each distinct statement or race (a whole
module with ``pytestmark = BOTH_DATABASES`` only when every test in it is about the
database); ``both_databases_for`` runs a parametrized test's cases on SQLite and a
named few on PostgreSQL too, when its SQL is the same for every case.

Both databases start at the newest migration without paying for a schema build:
SQLite from a copy of a migrated file, PostgreSQL from one migrated database emptied
before each test.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import shutil
import sqlite3
import threading
import time
import weakref
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from types import BuiltinFunctionType, FunctionType
from typing import Any, ClassVar

import asyncpg
import pytest
from argon2 import PasswordHasher
from click.testing import Result
from hypothesis import settings as hypothesis_settings
from jinja2.bccache import Bucket, BytecodeCache
from quart import Quart
from quart.routing import QuartRule
from quart.testing import QuartCliRunner
from quart.typing import TestClientProtocol
from quart.wrappers import Response
from sqlalchemy import Engine, make_url, text
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool, QueuePool

from quartapp import create_app, load_config, load_models
from quartapp.auth import passwords as password_service
from quartapp.auth import settings as auth_settings
from quartapp.auth import users
from quartapp.auth.models import User
from quartapp.auth.passwords import passwords
from quartapp.db import Base, db, schema
from quartapp.settings import Settings
from quartapp.settings import database_url as async_database_url
from tests.support.pg import (
    INSTALL_HINT,
    PGBOUNCER_HINT,
    PgBouncer,
    PostgresServer,
    find_bin_dir,
    find_pgbouncer,
    make_server,
    running_server,
)
from tests.support.server import (
    Launcher,
    Server,
    server_env,
)

# The server tests' ``launch`` fixture: real servers, stopped when the test ends.
from tests.support.server import launch as launch

DATABASES = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
# A test whose outcome can depend on the database runs on both (see the module docstring).
BOTH_DATABASES = pytest.mark.both_databases
# For the few tests about one database's own behaviour: ``@POSTGRES_ONLY`` above a test
# that takes ``settings`` (or ``app``) runs it on PostgreSQL alone.
POSTGRES_ONLY = pytest.mark.parametrize("database", [DATABASES[1]], indirect=True)
SQLITE_ONLY = pytest.mark.parametrize("database", ["sqlite"], indirect=True)


def both_databases_for(
    argnames: str, values: list[Any], ids: list[str], *, postgres: list[str]
) -> pytest.MarkDecorator:
    """Parametrize ``argnames`` over ``values`` on SQLite, and over the ones whose ids are
    in ``postgres`` on PostgreSQL too: for a test whose SQL is the same for every value,
    where one case on PostgreSQL covers what the database decides (say why beside it).
    """
    assert set(postgres) <= set(ids), f"unknown ids: {set(postgres) - set(ids)}"
    names = [name.strip() for name in argnames.split(",")]
    cases = [
        pytest.param(
            database,
            *(value if len(names) > 1 else (value,)),
            id=f"{database}-{id_}",
            marks=pytest.mark.postgres if database == "postgresql" else (),
        )
        for database in ("sqlite", "postgresql")
        for value, id_ in zip(values, ids, strict=True)
        if database == "sqlite" or id_ in postgres
    ]
    return pytest.mark.parametrize(("database", *names), cases, indirect=["database"])


# `make test` runs on two pytest-xdist workers (--dist loadgroup). Tests whose assertions
# involve time on a real server (a flood that must not keep anyone out, a bound in
# milliseconds, a comparison of durations) share this group: one worker runs them one
# after another, so no two of them ever load the machine at once.
TIMING = pytest.mark.xdist_group("timing")
TEST_DATABASE = "quartapp_test"
load_models()  # every feature's tables, for TABLES and the schema's tests
TABLES = [table.name for table in Base.metadata.sorted_tables]

# Fixed test keys, 43 characters like the output of `python -m quartapp.keys`.
TEST_SECRET_KEY = "test-secret-key-0123456789abcdefghijklmnopq"
TEST_CSRF_KEY = "test-csrf-key-0123456789abcdefghijklmnopqrs"
PASSWORD = "correct horse battery staple"
CSRF_INPUT = re.compile(r'<input[^>]*name="csrf_token"[^>]*>')
VALUE = re.compile(r'value="([^"]+)"')


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: Any) -> None:
    """With CI=true a skipped test fails the build: CI must run every real part."""
    skipped = terminalreporter.stats.get("skipped", [])
    if os.environ.get("CI") != "true" or not skipped:
        return
    reasons = sorted({str(report.longrepr[-1]) for report in skipped})
    terminalreporter.write_line(
        f"CI=true: {len(skipped)} test(s) skipped; CI must run them all. Reasons: "
        + "; ".join(reasons),
        red=True,
    )


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Give each ``xdist_group`` test the ``@group`` node id ``--dist loadgroup`` reads,
    and put the tests that share a module-scoped fixture in a group of their module.

    pytest-xdist 3.8 names a test's group by setting ``item._nodeid``, which pytest 9 no
    longer reads (a node's id is ``item._id``), so every group was silently split over
    both workers: the TIMING tests ran beside each other, and a module's shared servers
    (``xdist_group("scaleout")``) started once on each worker. This does what xdist
    meant, on the id pytest 9 uses; drop it once xdist sets the group on ``_id`` itself.
    """
    if not getattr(config.option, "loadgroup", False):  # set on the workers alone
        return
    for item in items:
        groups = sorted(
            {
                str(mark.args[0] if mark.args else mark.kwargs.get("name", "default"))
                for mark in item.iter_markers("xdist_group")
            }
        )
        if (
            not groups
            and _shares_a_module_fixture(item)
            and not item.get_closest_marker("browser")
        ):
            # A module's shared server starts once only if its tests run on one worker.
            # Not the browser tests: xdist sends the biggest groups first, and those must
            # run last on each worker (tests/support/browser.py).
            groups = [item.nodeid.split("::", 1)[0]]
        node_id = getattr(item, "_id", None)
        if groups and node_id is not None and "@" not in item.nodeid:
            # NodeId is frozen and caches its string; the cache is what nodeid returns.
            object.__setattr__(node_id, "_str_cache", f"{item.nodeid}@{'_'.join(groups)}")


def _shares_a_module_fixture(item: pytest.Item) -> bool:
    """Whether the test uses a module-scoped fixture (a real server its module shares)."""
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return False
    return any(defs and defs[-1].scope == "module" for defs in info.name2fixturedefs.values())


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Turn skips into a failing exit status when CI=true (see the summary above)."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if os.environ.get("CI") == "true" and reporter and reporter.stats.get("skipped"):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


# Hypothesis: a few hundred examples a run, more in CI where a rare case has more runs
# to turn up in. HYPOTHESIS_PROFILE picks one by name (e.g. "ci" locally, before a push).
hypothesis_settings.register_profile("dev", max_examples=300)
hypothesis_settings.register_profile("ci", max_examples=500)
hypothesis_settings.load_profile(
    os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") == "true" else "dev")
)


class SessionTemplateCode(BytecodeCache):
    """Compiled templates kept for the whole session, shared by every test's app.

    Jinja checks each entry against its template's source checksum, as with any
    bytecode cache, so an edited template is compiled again.
    """

    def __init__(self) -> None:
        self.code: dict[str, bytes] = {}

    def load_bytecode(self, bucket: Bucket) -> None:
        if bucket.key in self.code:
            bucket.bytecode_from_string(self.code[bucket.key])

    def dump_bytecode(self, bucket: Bucket) -> None:
        self.code[bucket.key] = bucket.bytecode_to_string()


# Each test builds an app, and each app's Jinja environment would compile again every
# template it renders: about a tenth of an in-process test's CPU time. The cache is a
# standard Jinja option, given to every app that the tests' process builds.
Quart.jinja_options = {**Quart.jinja_options, "bytecode_cache": SessionTemplateCode()}


class SessionRule(QuartRule):
    """A URL rule whose URL builders are compiled once a session, shared by every app.

    Werkzeug compiles two Python functions (through ``ast`` and ``compile``) for each
    rule of each app it builds: three quarters of ``create_app``'s time, paid again by
    every test. A builder depends only on the rule's text, its parts and defaults, so
    apps with the same rule reuse one; it reads its converters from the rule it is
    bound to (``self._converters``), so sharing it shares no state.
    """

    _builders: ClassVar[dict[tuple[Any, ...], Callable[..., tuple[str, str]]]] = {}

    def _compile_builder(self, append_unknown: bool = True) -> Callable[..., tuple[str, str]]:
        defaults = self.defaults or {}
        # The parts werkzeug turns into code: each default is folded in as a constant.
        parts = tuple(
            (False, self._converters[data].to_url(defaults[data]))
            if dynamic and data in defaults
            else (dynamic, data)
            for dynamic, data in self._trace
        )
        key = (self.rule, append_unknown, parts, tuple(map(str, defaults)))
        builder = self._builders.get(key)
        if builder is None:
            builder = self._builders[key] = super()._compile_builder(append_unknown)
        return builder


# Quart's own hook for the rule class; production apps keep werkzeug's compile per rule.
Quart.url_rule_class = SessionRule


class SessionCompiledCache:
    """SQL compiled once a session, shared by the engines of every test's app.

    SQLAlchemy keeps compiled statements per engine, and each test's app opens an
    engine of its own: every test compiled its ~20 statements again (~1 ms each, a
    tenth of an in-process test's CPU time). A compiled statement depends on the
    statement and the dialect's settings alone, so the entries are keyed by those
    settings (every plain value of the dialect: its class, server version, paramstyle,
    flags) instead of by the dialect object.
    """

    def __init__(self) -> None:
        self.compiled: dict[tuple[Any, ...], Any] = {}
        self.signatures: weakref.WeakKeyDictionary[Dialect, tuple[Any, tuple[Any, ...]]] = (
            weakref.WeakKeyDictionary()
        )

    def signature(self, dialect: Dialect) -> tuple[Any, ...]:
        """The dialect's settings, computed again if it (re)connected since."""
        known = self.signatures.get(dialect)
        if known is not None and known[0] == dialect.server_version_info:
            return known[1]
        plain = (bool, int, float, str, tuple, type(None), FunctionType, BuiltinFunctionType)
        settings = tuple(sorted((k, v) for k, v in vars(dialect).items() if isinstance(v, plain)))
        signature = (type(dialect), settings)
        self.signatures[dialect] = (dialect.server_version_info, signature)
        return signature

    def _key(self, key: tuple[Any, ...]) -> tuple[Any, ...]:
        return (self.signature(key[0]), *key[1:])

    def get(self, key: tuple[Any, ...], default: Any = None) -> Any:
        return self.compiled.get(self._key(key), default)

    def __setitem__(self, key: tuple[Any, ...], value: Any) -> None:
        self.compiled[self._key(key)] = value

    def clear(self) -> None:
        self.compiled.clear()


SESSION_COMPILED = SessionCompiledCache()


def _compiled_cache(engine: Engine) -> SessionCompiledCache | None:
    # An engine made with query_cache_size=0 caches nothing, as without this.
    return SESSION_COMPILED if engine.__dict__.get("_own_compiled_cache") is not None else None


def _set_compiled_cache(engine: Engine, cache: Any) -> None:
    engine.__dict__["_own_compiled_cache"] = cache


# Engine.__init__ sets _compiled_cache on each engine; in the tests' process this
# property stands in for it. Production engines keep their own caches.
setattr(Engine, "_compiled_cache", property(_compiled_cache, _set_compiled_cache))  # noqa: B010


def _parametrizes_database(metafunc: pytest.Metafunc) -> bool:
    for marker in metafunc.definition.iter_markers("parametrize"):
        names = marker.args[0]
        if isinstance(names, str):
            names = [name.strip() for name in names.split(",")]
        if "database" in names:
            return True
    return False


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run a test on SQLite, and on PostgreSQL too when it is marked ``both_databases``.

    A test that parametrizes ``database`` itself (``POSTGRES_ONLY``...) keeps its own list.
    """
    if "database" not in metafunc.fixturenames or _parametrizes_database(metafunc):
        return
    both = metafunc.definition.get_closest_marker("both_databases") is not None
    metafunc.parametrize("database", DATABASES if both else ["sqlite"], indirect=True)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Keep the developer's shell and the repo's instance/ folder out of every test."""
    for name in list(os.environ):
        if name.startswith("QUARTAPP_") or name in ("SECRET_KEY", "DATABASE_URL"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("QUARTAPP_INSTANCE_PATH", str(tmp_path / "instance"))


def make_settings(tmp_path: Path, **extra: Any) -> dict[str, Any]:
    """Settings for a test app: its own SQLite file, fixed keys, the cheapest hashing."""
    return {
        "TESTING": True,
        "SECRET_KEY": TEST_SECRET_KEY,
        "WTF_CSRF_SECRET_KEY": TEST_CSRF_KEY,
        "INSTANCE_PATH": str(tmp_path / "instance"),
        "DATABASE_URL": sqlite_url(tmp_path),
        "ARGON2_MEMORY_COST": 19456,
        "ARGON2_TIME_COST": 2,
        "INITIAL_ADMIN": False,
        "TRUSTED_HOSTS": ["localhost"],
        **extra,
    }


def settings_at_head(directory: Path, database: str, **extra: Any) -> dict[str, Any]:
    """Settings for an app a test builds itself on the ``database`` fixture's database.

    That database is at the newest revision already, so the app skips the upgrade it
    would run at startup (a no-op costing ~30 ms of CPU), as the ``settings``
    fixture's app does; it still checks the revision.
    """
    return make_settings(directory, DATABASE_URL=database, DATABASE_AUTO_UPGRADE=False, **extra)


def sqlite_url(directory: Path) -> str:
    """The URL of the test SQLite file in ``directory``."""
    return f"sqlite:///{directory / 'test.db'}"


def _migrate(url: str, directory: Path) -> None:
    """Bring the database at ``url`` to the newest revision, in a thread of its own: a
    session fixture may be set up while a test's event loop runs (Playwright's)."""
    settings = Settings.from_config(load_config(make_settings(directory, DATABASE_URL=url)))
    with ThreadPoolExecutor(1) as thread:
        thread.submit(asyncio.run, schema.upgrade(settings)).result()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file at the newest revision, copied for each test."""
    directory = tmp_path_factory.mktemp("template")
    _migrate(sqlite_url(directory), directory)
    return directory / "test.db"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer | None]:
    """One PostgreSQL for the session, or None when it is not installed."""
    bin_dir = find_bin_dir()
    if bin_dir is None:
        yield None
        return
    server = make_server(bin_dir)
    server.start("max_connections=200")
    try:
        server.psql(f"CREATE DATABASE {TEST_DATABASE}")
        _migrate(server.url(TEST_DATABASE), server.root)
        yield server
    finally:
        server.stop("immediate")
        shutil.rmtree(server.root.parent, ignore_errors=True)


def require_postgres(server: PostgresServer | None) -> PostgresServer:
    """The session's PostgreSQL, or skip the test saying how to get one."""
    if server is None:
        pytest.skip(INSTALL_HINT)
    return server


@pytest.fixture(scope="session")
def pgbouncer(postgres_server: PostgresServer | None) -> Iterator[PgBouncer]:
    """A real PgBouncer (transaction pooling) in front of the session's PostgreSQL."""
    server = require_postgres(postgres_server)
    binary = find_pgbouncer()
    if binary is None:
        pytest.skip(PGBOUNCER_HINT)
    bouncer = PgBouncer(binary, server)
    bouncer.start()
    try:
        yield bouncer
    finally:
        bouncer.stop()


@contextmanager
def postgres_of_its_own(postgres_server: PostgresServer | None) -> Iterator[PostgresServer]:
    """A PostgreSQL besides the session's, so stopping it leaves the others alone."""
    require_postgres(postgres_server)
    bin_dir = find_bin_dir()
    assert bin_dir is not None
    with running_server(bin_dir) as server:
        yield server


@pytest.fixture
def own_postgres(postgres_server: PostgresServer | None) -> Iterator[PostgresServer]:
    """A PostgreSQL of this test's own, so stopping it leaves the others alone."""
    with postgres_of_its_own(postgres_server) as server:
        yield server


@pytest.fixture
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh database at the newest revision: its URL, on SQLite or PostgreSQL.

    The session's PostgreSQL is asked for only here, by a test on it, so a run of
    SQLite tests alone (``make test-quick``) never starts one.
    """
    if request.param == "sqlite":
        shutil.copy(request.getfixturevalue("sqlite_template"), tmp_path / "test.db")
        yield sqlite_url(tmp_path)
        return
    server = require_postgres(request.getfixturevalue("postgres_server"))
    # CREATE DATABASE costs most of a second; emptying the tables, a few milliseconds.
    # Tests run one at a time, so they can share one database emptied before each.
    request.getfixturevalue("test_database_emptier").empty()
    yield server.url(TEST_DATABASE)


class Emptier:
    """A connection to the test database, on a thread and event loop of its own, that
    empties it before each test: a round trip of ~3 ms instead of a psql process (~30 ms).

    Its own loop, because the ``database`` fixture is set up outside or inside a test's
    (Playwright's) loop alike. A test that ends every backend ends this one too: it
    connects again.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(
            target=self.loop.run_forever, name="test-db-emptier", daemon=True
        )
        self.thread.start()
        self.connection: asyncpg.Connection[asyncpg.Record] | None = None

    def _run(self, coroutine: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(60)

    def empty(self) -> None:
        for attempt in range(2):
            try:
                if self.connection is None or self.connection.is_closed():
                    self.connection = self._run(asyncpg.connect(self.url))
                self._run(self.connection.execute(EMPTY_THE_TEST_DATABASE))
                return
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                self.connection = None
                if attempt:
                    raise

    def close(self) -> None:
        if self.connection is not None:
            with suppress(OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                self._run(self.connection.close(timeout=10))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()


@pytest.fixture(scope="session")
def test_database_emptier(postgres_server: PostgresServer | None) -> Iterator[Emptier]:
    """The session's :class:`Emptier` of the test database."""
    emptier = Emptier(require_postgres(postgres_server).url(TEST_DATABASE))
    try:
        yield emptier
    finally:
        emptier.close()


# What the PostgreSQL of a test is emptied with: the last test's connections ended, every
# row deleted and every id sequence back at 1, as a new database would be. DELETE, not
# TRUNCATE: a TRUNCATE of the 17 tables gives each table and index a new file and took
# ~200 ms a test, these few rows take a few ms. The replica role skips the foreign keys'
# checks and the logins' NOTIFY triggers, both moot when every row goes.
EMPTY_THE_TEST_DATABASE = (
    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
    f"WHERE datname = '{TEST_DATABASE}' AND pid <> pg_backend_pid();"
    "SET session_replication_role = replica;"
    + "".join(f"DELETE FROM {table};" for table in reversed(TABLES))
    + "SELECT count(setval(format('%I.%I', schemaname, sequencename), 1, false)) "
    "FROM pg_sequences WHERE schemaname = 'public'"
)


@pytest.fixture
def settings(tmp_path: Path, database: str) -> dict[str, Any]:
    """The overrides the ``app`` fixture uses; tests may change them first.

    The database is at the newest revision already, so the app skips the upgrade it
    would run at startup (a no-op, but a quarter of an app's start in CPU time).
    """
    return make_settings(tmp_path, DATABASE_URL=database, DATABASE_AUTO_UPGRADE=False)


# argon2's cheapest parameters, for the tests' apps and CLI: a check costs ~0.1 ms instead
# of ~26 ms. Settings refuse parameters under the OWASP floor (auth/settings.py), so this
# is no setting: the fixtures below swap the hasher of the hashing service they build.
CHEAP_HASHING = (1, 8, 1)  # time_cost, memory_cost (KiB), parallelism


@pytest.fixture
def cheap_hashing(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every hashing service this test builds (its apps', its CLI commands') hashes cheaply.

    Hashing is not what most tests are about; the tests about it (parameters, rehashing,
    timing, the dummy hash, the bounds) are marked ``real_hashing`` and keep the
    configured parameters.
    """
    if request.node.get_closest_marker("real_hashing") is not None:
        return
    build = password_service.build

    def cheap_build(config: auth_settings.AuthSettings) -> password_service.Passwords:
        service = build(config)
        time_cost, memory_cost, parallelism = CHEAP_HASHING
        service.hasher = PasswordHasher(time_cost, memory_cost, parallelism)
        return service

    monkeypatch.setattr(password_service, "build", cheap_build)


@pytest.fixture
async def app(settings: dict[str, Any], cheap_hashing: None) -> AsyncIterator[Quart]:
    """A started app (database open, startup hooks run) on a fresh SQLite file."""
    application = create_app(settings)
    # Startup makes the dummy hash an unknown user is checked against: a real one with
    # the app's parameters, made once a session here (startup still times a check).
    service = passwords(application)
    service._dummy_hash = await _seeded_hash(service.hasher, "dummy password")
    async with application.test_app():
        async with application.app_context():
            pool = db.store.engine.pool
        yield application
    await finish_leftover_tasks()
    # The engine is disposed at shutdown; a connection still checked out then is closed
    # by no one but the garbage collector, later, when this test's loop is gone.
    if isinstance(pool, QueuePool):  # NullPool (behind PgBouncer) keeps none
        assert pool.checkedout() == 0, "a database connection outlived the app's shutdown"
    join_sqlite_threads()


# Python names a thread after its target; this is aiosqlite's, one per connection.
SQLITE_THREAD = "(_connection_worker_thread)"


def join_sqlite_threads(timeout: float = 10.0) -> None:
    """Wait, inside the test's event loop, for aiosqlite's connection threads to end.

    A connection that fails to open (the database file gone, in test_health.py) stops
    its thread with a future nobody awaits; the thread answers that future on the
    loop it was made in. Left alone, it answered after pytest-asyncio had closed the
    loop, and raised "Event loop is closed", reported against whichever test came
    next. Every connection is closed by now, so each thread ends at once.
    """
    deadline = time.monotonic() + timeout
    for thread in threading.enumerate():
        if thread.name.endswith(SQLITE_THREAD):
            thread.join(max(0.0, deadline - time.monotonic()))
    alive = [t.name for t in threading.enumerate() if t.name.endswith(SQLITE_THREAD)]
    assert not alive, f"aiosqlite connections outlived the app's shutdown: {alive}"


async def finish_leftover_tasks() -> None:
    """Cancel and wait for the tasks a test left running, inside its own event loop.

    pytest-asyncio would cancel them while it closes the loop: a task holding a
    database connection then hands it back as the loop closes, and aiosqlite's thread
    answers into a closed loop ("Event loop is closed", reported against a later test).
    """
    current = asyncio.current_task()
    leftover = [task for task in asyncio.all_tasks() if task is not current]
    for task in leftover:
        task.cancel()
    await asyncio.gather(*leftover, return_exceptions=True)


@pytest.fixture
def client(app: Quart) -> TestClientProtocol:
    """A test client that keeps cookies like a browser."""
    return app.test_client()


@pytest.fixture
def runner(settings: dict[str, Any], cheap_hashing: None) -> QuartCliRunner:
    """A CLI runner for an app on the same database as the ``app`` fixture, hashing as
    cheaply: an account made by one is current for the other (no rehash at login)."""
    return create_app(settings).test_cli_runner()


def query(settings: dict[str, Any], sql: str) -> list[tuple[Any, ...]]:
    """Rows straight from the test database, bypassing the app.

    A SQLite file is read with the standard library's ``sqlite3``, in one transaction
    (~0.3 ms; an engine and an event loop of its own cost ~4 ms a call). PostgreSQL is
    read through SQLAlchemy, in a thread with its own event loop, so sync tests (the
    CLI's) and async tests call it alike.
    """
    url = make_url(settings["DATABASE_URL"])
    if url.get_backend_name() == "sqlite":
        assert url.database, "no SQLite file in the settings"
        with closing(sqlite3.connect(url.database)) as connection, connection:
            cursor = connection.execute(sql)
            return [tuple(row) for row in cursor.fetchall()] if cursor.description else []

    async def fetch() -> list[tuple[Any, ...]]:
        url = async_database_url(settings["DATABASE_URL"])
        engine = create_async_engine(url, poolclass=NullPool)
        try:
            async with engine.begin() as connection:
                result = await connection.execute(text(sql))
                return [tuple(row) for row in result.all()] if result.returns_rows else []
        finally:
            await engine.dispose()

    with ThreadPoolExecutor(1) as thread:
        return thread.submit(asyncio.run, fetch()).result()


async def aquery(settings: dict[str, Any], sql: str) -> list[tuple[Any, ...]]:
    """:func:`query` for async tests: it waits in a thread, and the event loop runs on.

    A blocking ``query`` on the loop's thread deadlocks with any of the app's background
    writers caught between two statements of a transaction: SQLite's write lock is theirs
    until their next trip, which needs the loop that ``query`` holds. The mail sender's
    claim (``UPDATE ... RETURNING``, then ``COMMIT``) met it: "database is locked" after
    sqlite3's 5 s, reported against the test's own statement.
    """
    return await asyncio.to_thread(query, settings, sql)


def usernames(settings: dict[str, Any]) -> list[str]:
    """Every stored username, sorted."""
    return [name for (name,) in query(settings, "SELECT username FROM users ORDER BY username")]


def stored_hash(settings: dict[str, Any], name: str = "alice") -> str:
    """The password hash stored for ``name``."""
    return str(dict(query(settings, "SELECT username, password_hash FROM users"))[name])


async def ausernames(settings: dict[str, Any]) -> list[str]:
    """:func:`usernames` for async tests (see :func:`aquery`)."""
    return await asyncio.to_thread(usernames, settings)


async def astored_hash(settings: dict[str, Any], name: str = "alice") -> str:
    """:func:`stored_hash` for async tests (see :func:`aquery`)."""
    return await asyncio.to_thread(stored_hash, settings, name)


async def login_count(settings: dict[str, Any]) -> int:
    """How many server-side login rows exist."""
    return int((await aquery(settings, "SELECT count(*) FROM logins"))[0][0])


def cookie_value(client: TestClientProtocol) -> str:
    """The session cookie a test client holds."""
    assert client.cookie_jar is not None
    values = [c.value for c in client.cookie_jar if c.name == "session"]
    assert len(values) == 1
    return values[0] or ""


def replay(app: Quart, value: str) -> TestClientProtocol:
    """A new browser that presents a copied session cookie."""
    other = app.test_client()
    other.set_cookie("localhost", "session", value)
    return other


# Hashes made once per session, by (argon2 parameters, password): seeding an account is
# not what most tests are about, and each hash holds the CPU for tens of milliseconds.
_SEEDED_HASHES: dict[tuple[int, int, int, str], str] = {}


async def _seeded_hash(hasher: PasswordHasher, password: str) -> str:
    """A real hash of ``password`` with ``hasher``'s parameters, made once a session."""
    key = (hasher.time_cost, hasher.memory_cost, hasher.parallelism, password)
    if key not in _SEEDED_HASHES:
        _SEEDED_HASHES[key] = await asyncio.to_thread(hasher.hash, password)
    return _SEEDED_HASHES[key]


# The (password, username, settings) that passed the password policy this session.
_VETTED: set[tuple[str, str, auth_settings.AuthSettings]] = set()


async def add_user(app: Quart, name: str = "alice", password: str = PASSWORD) -> None:
    """Create an account directly in the app's database, with a hash made once a session.

    The name and password go through the same checks as ``users.create_user``; the
    hash is a real one made by the app's own hasher with the test's parameters, so a
    login verifies it like any other. A test about hashing calls ``users.create_user`` itself.
    """
    password_hash = await _seeded_hash(passwords(app).hasher, password)
    config = auth_settings.of(app)
    async with app.app_context(), db.session() as session:
        username = await users.available_username(session, config, name)
        # The rating (zxcvbn, milliseconds of CPU) depends on these three alone; one
        # that passed passes again.
        if (password, username, config) not in _VETTED:
            await users.vet_password(password, config, username=username)
            _VETTED.add((password, username, config))
        session.add(User(username=username, password_hash=password_hash))
        await session.commit()


async def body(response: Response) -> str:
    """A response's text."""
    return await response.get_data(as_text=True)


async def csrf_token(client: TestClientProtocol, path: str = "/login") -> str:
    """The CSRF token from the form on ``path``, read like a browser would."""
    response = await client.get(path)
    field = CSRF_INPUT.search(await body(response))
    assert field, f"no CSRF field on {path}"
    value = VALUE.search(field.group(0))
    assert value, f"empty CSRF field on {path}"
    return value.group(1)


async def invoke(runner: QuartCliRunner, *args: str, stdin: str | None = None) -> Result:
    """Run a command from an async test: its own ``asyncio.run`` needs its own thread."""
    return await asyncio.to_thread(runner.invoke, args=list(args), input=stdin)


@dataclass
class AuthActions:
    """Log in and out through the real forms, CSRF token included."""

    client: TestClientProtocol

    async def login(
        self,
        username: str = "alice",
        password: str = PASSWORD,
        *,
        remember: bool = False,
        path: str = "/login",
    ) -> Response:
        form = {
            "username": username,
            "password": password,
            "csrf_token": await csrf_token(self.client, path),
        }
        if remember:
            form["remember_me"] = "y"
        return await self.client.post(path, form=form)

    async def logout(self) -> Response:
        token = await csrf_token(self.client, "/logout")
        return await self.client.post("/logout", form={"csrf_token": token})


@pytest.fixture
async def auth(app: Quart, client: TestClientProtocol) -> AuthActions:
    """``alice`` exists, and ``auth.login()`` / ``auth.logout()`` act as her browser."""
    await add_user(app)
    return AuthActions(client)


# The browser tests' fixtures and summary line (Chromium through pytest-playwright).
pytest_plugins = ["tests.support.browser"]


@pytest.fixture(scope="session")
def base_url() -> str | None:
    """No base URL for the browser tests: each server has its own port, and visitors use
    full URLs.

    It stands in for pytest-playwright's ``base_url``, which is defined on a class
    instance (pytest 9 warns about that, and ``filterwarnings = error`` fails). It is
    here rather than in tests/support/browser.py because pytest-playwright registers
    after that plugin, and only a conftest or a test module overrides it.
    """
    return None


Start = Callable[..., Server]


# The template the real servers' PostgreSQL databases are cloned from.
SERVED_TEMPLATE = "quartapp_served_template"


def _add_alice(url: str, directory: Path) -> None:
    """Put alice (PASSWORD) into the database at ``url``, already at the newest revision.

    Through the app's own code, in a thread of its own: a session fixture may be set up
    while a test's event loop runs.
    """

    async def work() -> None:
        application = create_app(make_settings(directory, DATABASE_URL=url))
        async with application.test_app():
            await add_user(application)

    with ThreadPoolExecutor(1) as thread:
        thread.submit(asyncio.run, work()).result()


@pytest.fixture(scope="session")
def served_sqlite_template(
    sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The migrated SQLite file with alice in it, copied for each test's real servers."""
    directory = tmp_path_factory.mktemp("served-template")
    shutil.copy(sqlite_template, directory / "test.db")
    _add_alice(sqlite_url(directory), directory)
    return directory / "test.db"


@pytest.fixture(scope="session")
def served_postgres_template(
    postgres_server: PostgresServer | None, tmp_path_factory: pytest.TempPathFactory
) -> str:
    """A migrated PostgreSQL database with alice in it, cloned for each test's real servers."""
    server = require_postgres(postgres_server)
    server.psql(f"CREATE DATABASE {SERVED_TEMPLATE}")
    directory = tmp_path_factory.mktemp("served-postgres-template")
    _migrate(server.url(SERVED_TEMPLATE), directory)
    _add_alice(server.url(SERVED_TEMPLATE), directory)
    return SERVED_TEMPLATE


@pytest.fixture(params=DATABASES)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database for the real servers of one test, a SQLite file or PostgreSQL.

    It is at the newest revision and holds alice (PASSWORD), hashed at the servers'
    argon2 cost: a copy of a session template, instead of a release step and a
    ``users create`` in two processes of their own for every test (those are tested in
    test_server.py and test_cli.py).
    """
    with served_database(request, request.param, tmp_path) as url:
        yield url


@contextmanager
def served_database(
    request: pytest.FixtureRequest, database: str, directory: Path
) -> Iterator[str]:
    """A database at the newest revision holding alice: a copy of the session's template
    (a SQLite file in ``directory``, or a PostgreSQL database dropped afterwards)."""
    if database == "sqlite":
        shutil.copy(request.getfixturevalue("served_sqlite_template"), directory / "quartapp.db")
        yield f"sqlite:///{directory / 'quartapp.db'}"
        return
    server = require_postgres(request.getfixturevalue("postgres_server"))
    template = request.getfixturevalue("served_postgres_template")
    name = server.new_database_name()
    server.psql(f"CREATE DATABASE {name} TEMPLATE {template}")
    try:
        yield server.url(name)
    finally:
        server.psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def start(tmp_path: Path, database_url: str) -> Iterator[Start]:
    """Start production servers (hypercorn, 2 workers unless told) on the test's database.

    Every server of a test shares one SECRET_KEY; alice is in the database already.
    Keyword arguments are environment variables for the server.
    """
    key = secrets.token_urlsafe(32)
    with Launcher(tmp_path) as launcher:

        def start_server(workers: int = 2, **settings: str) -> Server:
            env = server_env(
                tmp_path / "instance",
                QUARTAPP_ENV="production",
                DATABASE_URL=database_url,
                QUARTAPP_TRUSTED_HOSTS='["127.0.0.1"]',
                **{"SECRET_KEY": key, "QUARTAPP_SESSION_COOKIE_SECURE": "false", **settings},
            )
            return launcher.hypercorn(env, "--workers", str(workers))

        yield start_server
