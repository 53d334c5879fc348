"""The database module: engine settings per database, and private SQLite files."""

from __future__ import annotations

import asyncio
import stat
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.pool import NullPool

from quartapp import create_app
from quartapp.db import connect, engine_options, open_store
from quartapp.settings import Settings
from tests.conftest import (
    POSTGRES_ONLY,
    TEST_DATABASE,
    AuthActions,
    add_user,
    body,
    login_count,
    query,
)
from tests.support.pg import PgBouncer
from tests.support.settings import site

# The outcomes here can depend on the database (the rule: tests/conftest.py).
pytestmark = pytest.mark.both_databases


def config_for(url: str, **settings: Any) -> Settings:
    return site(DATABASE_URL=url, **settings)


async def test_a_new_sqlite_file_and_its_folder_are_private(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "app.db"

    async with connect(config_for(f"sqlite:///{path}")) as store:
        await store.ping()

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    for companion in path.parent.glob("app.db-*"):
        assert stat.S_IMODE(companion.stat().st_mode) == 0o600


def test_sqlite_has_no_pre_ping_and_a_bounded_pool(tmp_path: Path) -> None:
    store = open_store(config_for(f"sqlite:///{tmp_path}/x.db", DATABASE_POOL_SIZE=2))
    pool = store.engine.sync_engine.pool

    # A local file cannot drop a connection; a ping would cost a query per request.
    assert pool._pre_ping is False
    # engine.pool is typed as the base Pool; size() is QueuePool's.
    assert pool.size() == 2  # type: ignore[attr-defined]


def test_postgresql_pool_and_timeouts_come_from_the_settings() -> None:
    url, options = engine_options(
        config_for(
            "postgresql://u@db/app",
            DATABASE_POOL_SIZE=4,
            DATABASE_MAX_OVERFLOW=0,
            DATABASE_POOL_TIMEOUT=7,
            DATABASE_CONNECT_TIMEOUT=3,
            DATABASE_STATEMENT_TIMEOUT=2,
        )
    )

    assert url.drivername == "postgresql+asyncpg"
    assert (options["pool_size"], options["max_overflow"], options["pool_timeout"]) == (4, 0, 7)
    # No pre-ping: a dead connection is found locally or by its statement (Store.read).
    assert options["pool_pre_ping"] is False
    assert options["connect_args"]["timeout"] == 3
    assert options["connect_args"]["command_timeout"] == 2
    assert "statement_cache_size" not in options["connect_args"]


def test_pgbouncer_mode_prepares_nothing_that_outlives_a_statement() -> None:
    _, options = engine_options(config_for("postgresql://u@bouncer/app", DATABASE_PGBOUNCER=True))

    connect_args = options["connect_args"]
    assert connect_args["statement_cache_size"] == 0
    assert connect_args["prepared_statement_cache_size"] == 0
    names = {connect_args["prepared_statement_name_func"]() for _ in range(3)}
    assert len(names) == 3
    # PgBouncer pools; a second pool in front of it only holds server connections idle.
    assert options["poolclass"] is NullPool


def test_reads_are_autocommit_on_postgresql_but_not_behind_pgbouncer() -> None:
    direct = open_store(config_for("postgresql://u@db/app"))
    bouncer = open_store(config_for("postgresql://u@bouncer/app", DATABASE_PGBOUNCER=True))

    # Autocommit: no BEGIN/ROLLBACK round trips around the lookup's single SELECT.
    assert direct.reader.get_execution_options()["isolation_level"] == "AUTOCOMMIT"
    # PgBouncer (transaction mode) must keep a prepare and its execution on one server
    # connection, which only a transaction guarantees.
    assert "isolation_level" not in bouncer.reader.get_execution_options()


def bounced_transactions(bouncer: PgBouncer) -> int:
    """Transactions PgBouncer has passed on to the test database so far."""
    header, *rows = bouncer.show("STATS")
    column = header.index("total_xact_count")
    return sum(int(row[column]) for row in rows if row[0] == TEST_DATABASE)


@POSTGRES_ONLY
async def test_logging_in_and_browsing_through_a_real_pgbouncer(
    settings: dict[str, Any], pgbouncer: PgBouncer
) -> None:
    # Transaction pooling hands each transaction whichever server connection is free:
    # the app's statements must not rely on a connection's prepared statements or state.
    before = bounced_transactions(pgbouncer)
    app = create_app(
        {**settings, "DATABASE_URL": pgbouncer.url(TEST_DATABASE), "DATABASE_PGBOUNCER": True}
    )
    async with app.test_app():
        await add_user(app)
        auth = AuthActions(app.test_client())
        login = await auth.login()
        pages = [
            await auth.client.get(path) for path in ["/hello", "/account/sessions", "/hello"] * 3
        ]
        wrong = await AuthActions(app.test_client()).login(password="not the password at all")
        logout = await auth.logout()
        after_logout = await auth.client.get("/hello")

    assert login.headers["Location"] == "/hello"
    assert [page.status_code for page in pages] == [200] * 9
    assert "alice" in await body(pages[0])
    assert wrong.status_code == 200
    assert "Invalid Credentials. Please try again." in await body(wrong)
    assert logout.status_code == 302
    assert after_logout.status_code == 302
    assert await login_count(settings) == 0
    # It all went through PgBouncer (its totals are summed every second).
    deadline = time.monotonic() + 5
    while bounced_transactions(pgbouncer) - before < 10:
        assert time.monotonic() < deadline, "PgBouncer passed on no transactions"
        await asyncio.sleep(0.1)


@POSTGRES_ONLY
async def test_a_read_on_a_connection_the_server_dropped_is_run_again_on_a_new_one(
    settings: dict[str, Any],
) -> None:
    store = open_store(config_for(settings["DATABASE_URL"], DATABASE_POOL_SIZE=1))
    disconnects: list[bool] = []
    event.listen(
        store.engine.sync_engine,
        "handle_error",
        lambda context: disconnects.append(context.is_disconnect),
    )

    async def backend_pid(connection: AsyncConnection) -> int:
        return int(await connection.scalar(text("SELECT pg_backend_pid()")))

    try:
        first = await store.read(backend_pid)
        # The server ends the pooled connection; nothing here has noticed yet (the loop
        # is held by a blocking query, so asyncpg can't see the connection close).
        query(settings, f"SELECT pg_terminate_backend({first}, 5000)")
        second = await store.read(backend_pid)
    finally:
        await store.engine.dispose()

    assert second != first
    assert disconnects == [True]  # the first try met the dead connection; one retry


@POSTGRES_ONLY
async def test_a_read_that_fails_for_another_reason_is_not_repeated(
    settings: dict[str, Any],
) -> None:
    store = open_store(config_for(settings["DATABASE_URL"]))
    tries: list[int] = []

    async def bad_sql(connection: AsyncConnection) -> None:
        tries.append(1)
        await connection.execute(text("SELECT * FROM no_such_table"))

    try:
        with pytest.raises(DBAPIError):
            await store.read(bad_sql)
    finally:
        await store.engine.dispose()

    assert len(tries) == 1
