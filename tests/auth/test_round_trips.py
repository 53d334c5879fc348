"""What a logged-in GET costs the database, counted where it lands: PostgreSQL's own log.

The server logs every statement it runs (``log_statement = all``) and, through
``log_min_duration_statement = 0``, every Parse of a prepared statement, each line
prefixed with the client's ``application_name``. The app's pooled connections say
``quartapp``; its listening connection says ``quartapp-listener`` and is not counted
(it runs ``LISTEN`` once, at start, and a keepalive every few seconds, never per
request). Round trips are statements run plus statements prepared.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from quart import Quart

from quartapp import create_app, load_config
from quartapp.auth import last_seen, login_cache
from quartapp.db import db, schema
from quartapp.settings import Settings
from tests.conftest import AuthActions, add_user, make_settings, postgres_of_its_own
from tests.support.pg import PostgresServer

pytestmark = [pytest.mark.postgres]
PREFIX = "quartapp:"  # the app's pooled connections (log_line_prefix = '%a:')
STATEMENT = re.compile(r"LOG:  (statement|execute [^:]*): ")
PARSE = re.compile(r"LOG:  duration: [\d.]+ ms  parse ")
LOGIN_LOOKUP = "SELECT users.id, users.username, logins.remember"  # logins._FIND
# The migrated database each test's own is cloned from.
TEMPLATE = "round_trips_template"


@pytest.fixture(scope="module")
def logged_cluster(postgres_server: PostgresServer | None) -> Iterator[PostgresServer]:
    """A PostgreSQL of the module's own that logs every statement and prepare, by
    application, with a migrated template database for the tests' own databases.

    Its own: the log settings are the whole server's (``log_line_prefix`` cannot be set
    per database). One for the module: each test reads only the log between its own
    marks, made on a database of its own.
    """
    with postgres_of_its_own(postgres_server) as server:
        for setting in (
            "log_statement = 'all'",
            "log_min_duration_statement = 0",
            "log_line_prefix = '%a:'",
        ):
            server.psql(f"ALTER SYSTEM SET {setting}")
        server.psql("SELECT pg_reload_conf()")
        server.psql(f"CREATE DATABASE {TEMPLATE}")
        directory = Path(tempfile.mkdtemp(prefix="round-trips-"))
        config = load_config(make_settings(directory, DATABASE_URL=server.url(TEMPLATE)))
        asyncio.run(schema.upgrade(Settings.from_config(config)))
        shutil.rmtree(directory, ignore_errors=True)
        yield server


@dataclass
class LoggedDatabase:
    """A fresh migrated database on the logging server."""

    server: PostgresServer
    database: str

    def url(self) -> str:
        return self.server.url(self.database)

    def psql(self, sql: str) -> str:
        return self.server.psql(sql, self.database)


@pytest.fixture
def logged_postgres(logged_cluster: PostgresServer) -> Iterator[LoggedDatabase]:
    """A database of the test's own, cloned from the migrated template, on a server that
    logs every statement and prepare, by application."""
    name = logged_cluster.new_database_name()
    logged_cluster.psql(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
    try:
        yield LoggedDatabase(logged_cluster, name)
    finally:
        logged_cluster.psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


class ServerLog:
    """The part of a server's log written between two marks."""

    def __init__(self, server: PostgresServer, database: str = "postgres") -> None:
        self.server = server
        self.database = database
        self.path = server.root / "server.log"
        self.count = 0
        # The log may hold other tests' marks: this one's are its own.
        self.name = secrets.token_hex(4)

    def mark(self) -> str:
        """Log a marker statement from psql and return it, once it is in the file."""
        self.count += 1
        marker = f"round-trip-mark-{self.name}-{self.count}:"
        self.server.psql(f"SELECT '{marker}'", self.database)
        deadline = time.monotonic() + 10
        while marker not in self.path.read_text(errors="replace"):
            assert time.monotonic() < deadline, f"{marker} never reached the server log"
            time.sleep(0.01)
        return marker

    def between(self, start: str, end: str) -> list[str]:
        """Every log line between two marks."""
        text = self.path.read_text(errors="replace")
        return text[text.index(start) : text.index(end)].splitlines()

    def app_lines(self, start: str, end: str) -> list[str]:
        """The app's own log lines between two marks."""
        return [line for line in self.between(start, end) if line.startswith(PREFIX)]


def round_trips(lines: list[str]) -> dict[str, Any]:
    statements = [line for line in lines if STATEMENT.search(line)]
    parses = [line for line in lines if PARSE.search(line)]
    return {
        "round trips": len(statements) + len(parses),
        "statements": [line.removeprefix(PREFIX) for line in statements],
        "prepares": len(parses),
    }


async def wait_listening(app: Quart) -> None:
    """Until the app's listener is connected and its cache may answer."""
    deadline = time.monotonic() + 10
    async with app.app_context():
        while not login_cache.cache().trusted:
            assert time.monotonic() < deadline, "the login cache never started listening"
            await asyncio.sleep(0.01)


def one_connection_app(database: LoggedDatabase, tmp_path: Path) -> tuple[Quart, ServerLog]:
    """An app on ``database`` with one pooled connection, and the log of its statements.

    One connection, so that a cold request meets a connection that has prepared the
    login lookup before (as every pooled connection has after its first request): what
    is counted is the cost per request, not per connection.
    """
    settings = make_settings(
        tmp_path, DATABASE_URL=database.url(), DATABASE_POOL_SIZE=1, DATABASE_MAX_OVERFLOW=0
    )
    return create_app(settings), ServerLog(database.server, database.database)


@asynccontextmanager
async def serving(app: Quart) -> AsyncIterator[None]:
    """The app started, with alice in it and its cache listening."""
    async with app.test_app():
        await add_user(app)
        await wait_listening(app)
        yield


async def test_a_logged_in_get_costs_one_round_trip_cold_and_none_warm(
    logged_postgres: LoggedDatabase, tmp_path: Path
) -> None:
    app, server_log = one_connection_app(logged_postgres, tmp_path)
    async with serving(app):
        first = AuthActions(app.test_client())
        await first.login()
        assert (await first.client.get("/hello")).status_code == 200
        second = AuthActions(app.test_client())
        await second.login()  # a login this process has never looked up

        before_cold = server_log.mark()
        cold = await second.client.get("/hello")
        after_cold = server_log.mark()
        warm = await second.client.get("/hello")
        after_warm = server_log.mark()

    assert (cold.status_code, warm.status_code) == (200, 200)
    cold_cost = round_trips(server_log.app_lines(before_cold, after_cold))
    warm_cost = round_trips(server_log.app_lines(after_cold, after_warm))
    print(f"\nlogged-in GET /hello, cold cache: {cold_cost}\nwarm cache: {warm_cost}")
    # Cold: the SELECT of the login row alone, already prepared on the connection; no
    # pre-ping, no BEGIN, no ROLLBACK.
    assert cold_cost["round trips"] == 1, cold_cost
    assert LOGIN_LOOKUP in cold_cost["statements"][0]
    assert warm_cost["round trips"] == 0, warm_cost


async def test_an_expired_login_costs_its_select_and_its_delete_alone(
    logged_postgres: LoggedDatabase, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app, server_log = one_connection_app(logged_postgres, tmp_path)
    async with serving(app):
        auth = AuthActions(app.test_client())
        await auth.login()
        assert (await auth.client.get("/hello")).status_code == 200
        now = time.time()
        # Half an hour on, the login has idled out and its row is deleted.
        monkeypatch.setattr(time, "time", lambda: now + 31 * 60)

        start = server_log.mark()
        await auth.client.get("/hello")
        end = server_log.mark()

    cost = round_trips(server_log.app_lines(start, end))
    print(f"\nlogged-in GET /hello half an hour later: {cost}")
    # The SELECT and the DELETE, each alone: no BEGIN, no COMMIT. (The DELETE is rare
    # enough that this is its first use on the connection, so it is prepared too.)
    assert len(cost["statements"]) == 2, cost
    assert LOGIN_LOOKUP in cost["statements"][0]
    assert "DELETE FROM logins" in cost["statements"][1]
    assert cost["prepares"] <= 1, cost


async def test_a_due_last_seen_costs_the_request_nothing_and_the_batch_one_transaction(
    logged_postgres: LoggedDatabase, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app, server_log = one_connection_app(logged_postgres, tmp_path)
    async with serving(app):
        clients = [AuthActions(app.test_client()) for _ in range(3)]
        for auth in clients:
            await auth.login()
            assert (await auth.client.get("/hello")).status_code == 200
        now = time.time()
        # A minute on, every login's last_seen is due to be written.
        monkeypatch.setattr(time, "time", lambda: now + 61)

        start = server_log.mark()
        for auth in clients:
            assert (await auth.client.get("/hello")).status_code == 200
        after_requests = server_log.mark()
        async with app.app_context():
            seen = last_seen.pending()
            assert len(seen) == 3
            assert await seen.flush(db.store) == 3
            assert len(seen) == 0
        end = server_log.mark()
        # The write ended nothing: no cache waits for news, and the logins stay cached.
        async with app.app_context():
            cache = login_cache.cache()
            hits = cache.hits
            assert (await clients[0].client.get("/hello")).status_code == 200
            assert cache.hits == hits + 1

    requests = round_trips(server_log.app_lines(start, after_requests))
    batch = round_trips(server_log.app_lines(after_requests, end))
    print(f"\nthree logged-in GETs with last_seen due: {requests}\nthe batch: {batch}")
    assert requests["round trips"] == 0, requests
    # One transaction: the one UPDATE, prepared once, run with each login's parameters
    # (asyncpg's executemany sends them together).
    statements = batch["statements"]
    assert "BEGIN" in statements[0], batch
    assert "COMMIT" in statements[-1], batch
    updates = statements[1:-1]
    assert len(updates) == 3, batch
    assert all("UPDATE logins SET last_seen" in line for line in updates), batch
    assert batch["prepares"] <= 1, batch
    written = logged_postgres.psql(f"SELECT count(*) FROM logins WHERE last_seen >= {now + 60}")
    assert written.strip() == "3"
