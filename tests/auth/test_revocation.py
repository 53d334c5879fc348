"""How soon a login ended on one server is refused by another that had it cached.

Two real servers (hypercorn, one worker each) on one PostgreSQL, as two dynos (the
Procfile's own web line is started in tests/app/test_scaleout.py). Each caches login
rows and hears of ended ones through LISTEN/NOTIFY (quartapp/auth/login_listener.py).
"Immediate" means:

- a logout on A is refused by B within 100 ms (p99 over 50 logouts, measured from
  A's answer to the logout to B's first refusal);
- a login ended while B's listening connection is down is refused by B at once: B
  empties its cache and reads every row until it listens again.
"""

from __future__ import annotations

import asyncio
import math
import statistics
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass

import asyncpg
import pytest

from quartapp.auth.login_listener import APPLICATION_NAME
from tests.app.test_scaleout import log_in, production_env
from tests.auth.test_round_trips import LOGIN_LOOKUP, ServerLog
from tests.conftest import TIMING, require_postgres
from tests.support.pg import PostgresServer
from tests.support.server import (
    Browser,
    Server,
    free_port,
    hypercorn_command,
    running,
)

pytestmark = [pytest.mark.server, pytest.mark.postgres, TIMING]
LOGOUTS = 50
BOUND = 0.100  # seconds: docs/security.md's security table states it


@dataclass
class Pair:
    """Two servers on one database, and that database."""

    a: Server
    b: Server
    postgres: PostgresServer
    database: str

    def listeners(self) -> list[tuple[int, str]]:
        """The pid and start time of every listening connection on the database."""
        rows = self.postgres.psql(
            "SELECT pid, backend_start FROM pg_stat_activity "
            f"WHERE application_name = '{APPLICATION_NAME}' AND datname = '{self.database}'"
        )
        return [
            (int(pid), start) for pid, start in (line.split("|") for line in rows.splitlines())
        ]

    def wait_listening(self, count: int = 2, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.listeners()) < count:
            assert time.monotonic() < deadline, "the servers never started listening"
            time.sleep(0.05)


@pytest.fixture(scope="module")
def pair(
    postgres_server: PostgresServer | None,
    served_postgres_template: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Pair]:
    """Two production servers of one worker each, on a fresh database.

    The database is a clone of the migrated one with alice in it (the conftest's
    template), not a release step and a ``users create`` of its own: those are
    tested with two dynos in tests/app/test_scaleout.py.
    """
    server = require_postgres(postgres_server)
    tmp_path = tmp_path_factory.mktemp("revocation")
    name = server.new_database_name()
    server.psql(f"CREATE DATABASE {name} TEMPLATE {served_postgres_template}")
    # Statements on this database go to the server's log, to see what B reads.
    server.psql(f"ALTER DATABASE {name} SET log_statement = 'all'")
    env = production_env(tmp_path, server.url(name))
    try:
        with ExitStack() as stack:
            started = []
            for index in range(2):
                port = free_port()
                command = hypercorn_command(port, "--workers", "1")
                logs = tmp_path / f"logs-{index}"
                started.append(stack.enter_context(running(command, env, port, logs)))
            for each in started:
                each.wait_healthy()
            pair = Pair(started[0], started[1], server, name)
            pair.wait_listening()
            yield pair
    finally:
        server.psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def holder_of(browser: Browser, server: Server) -> Browser:
    """A browser on ``server`` holding a copy of ``browser``'s cookies."""
    holder = Browser(server.base_url)
    for cookie in browser.cookies:
        holder.cookies.set_cookie(cookie)
    return holder


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def test_the_other_server_answers_from_its_cache(pair: Pair) -> None:
    first = Browser(pair.a.base_url)
    assert log_in(first) == 302
    holder = holder_of(first, pair.b)
    server_log = ServerLog(pair.postgres, pair.database)

    start = server_log.mark()
    pages = [holder.get("/hello").status for _ in range(5)]
    end = server_log.mark()

    assert pages == [200] * 5
    # B read the row once; the other four were answered from its cache.
    assert sum(LOGIN_LOOKUP in line for line in server_log.between(start, end)) == 1


def test_a_logout_on_one_server_is_refused_by_the_other_within_100_ms(pair: Pair) -> None:
    first = Browser(pair.a.base_url)
    since_answer: list[float] = []
    since_request: list[float] = []
    at_first_try = 0
    for _ in range(LOGOUTS):
        assert log_in(first) == 302
        holder = holder_of(first, pair.b)
        assert holder.get("/hello").status == 200  # B reads the row and keeps it
        token = first.csrf_token("/logout")

        sent = time.perf_counter()
        assert first.post("/logout", {"csrf_token": token}).status == 302
        answered = time.perf_counter()
        tries = 0
        while holder.get("/hello").status == 200:
            tries += 1
            assert time.perf_counter() - answered < 5, "B never refused the ended login"
        refused = time.perf_counter()

        at_first_try += tries == 0
        since_answer.append(refused - answered)
        since_request.append(refused - sent)

    def figures(values: list[float]) -> str:
        return (
            f"p50 {statistics.median(values) * 1000:.1f} ms, "
            f"p99 {percentile(values, 0.99) * 1000:.1f} ms, "
            f"max {max(values) * 1000:.1f} ms"
        )

    print(
        f"\nlogout on A -> refused on B, {LOGOUTS} logouts; from A's answer: "
        f"{figures(since_answer)}; from the logout request: {figures(since_request)}; "
        f"refused at B's first request after A answered: {at_first_try}/{LOGOUTS}"
    )
    assert percentile(since_answer, 0.99) < BOUND


def test_a_login_ended_while_the_listener_is_down_is_refused_at_once(pair: Pair) -> None:
    first = Browser(pair.a.base_url)
    assert log_in(first) == 302
    holder = holder_of(first, pair.b)
    assert holder.get("/hello").status == 200
    assert holder.get("/hello").status == 200
    old = {pid for pid, _ in pair.listeners()}

    async def end_login_unheard() -> tuple[str, int]:
        """End both servers' listening connections and keep them from coming back,
        then end the login: its notification reaches no one. B is asked in between."""
        control = await asyncpg.connect(pair.postgres.url())
        connection = await asyncpg.connect(pair.postgres.url(pair.database))
        try:
            await control.execute(f"ALTER DATABASE {pair.database} ALLOW_CONNECTIONS false")
            await control.execute(
                "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity "
                "WHERE application_name = $1 AND datname = $2",
                APPLICATION_NAME,
                pair.database,
            )
            await connection.execute("DELETE FROM logins")
            listening = await control.fetchval(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE application_name = $1 AND datname = $2",
                APPLICATION_NAME,
                pair.database,
            )
            return str(listening), holder.get("/hello").status
        finally:
            await control.execute(f"ALTER DATABASE {pair.database} ALLOW_CONNECTIONS true")
            await connection.close()
            await control.close()

    listening, status = asyncio.run(end_login_unheard())

    assert listening == "0"  # no one heard the login end
    assert status == 302  # yet B refused it at once
    pair.wait_listening()
    assert not old & {pid for pid, _ in pair.listeners()}


def test_a_login_ended_once_the_listener_is_back_is_heard(pair: Pair) -> None:
    pair.wait_listening()
    first = Browser(pair.a.base_url)
    assert log_in(first) == 302
    holder = holder_of(first, pair.b)
    assert holder.get("/hello").status == 200
    assert holder.get("/hello").status == 200  # from B's cache, which would keep it

    pair.postgres.psql("DELETE FROM logins", pair.database)
    ended = time.perf_counter()

    # The news travels as a notification, a moment after psql's commit (the bound is the
    # test above's): on a busy machine B's next request can come first. What this test
    # is about is that the new listener hears it at all; unheard, B would answer from
    # its cache for as long as the login's own limits allow.
    while holder.get("/hello").status == 200:
        assert time.perf_counter() - ended < 2, "B's new listener never heard the login end"
