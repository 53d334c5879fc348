"""Two app servers on one PostgreSQL, as two dynos are: one site to a browser.

The Procfile's own lines run here: its release step (migrate, prune) once on a fresh
database, then its web line twice (production, two workers each), with the same keys.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

from .conftest import PASSWORD, require_postgres
from .pg import PostgresServer
from .server import (
    ROOT,
    Browser,
    Server,
    free_port,
    procfile,
    procfile_web_on_loopback,
    running,
    server_env,
)

pytestmark = [pytest.mark.server, pytest.mark.postgres]
WRONG = "wrong password, quite long"


@contextmanager
def two_dynos(server: PostgresServer, database: str, tmp_path: Path) -> Iterator[list[Server]]:
    """Release on ``database``, then two web processes of two workers each."""
    env = server_env(
        tmp_path / "instance",
        QUARTAPP_ENV="production",
        SECRET_KEY=secrets.token_urlsafe(32),
        DATABASE_URL=server.url(database),
        QUARTAPP_TRUSTED_HOSTS='["127.0.0.1"]',
        # Plain http on loopback: a Secure cookie would never come back.
        QUARTAPP_SESSION_COOKIE_SECURE="false",
        QUARTAPP_LOGIN_FAILURES_PER_USER="5",
        QUARTAPP_DATABASE_CONNECT_TIMEOUT="2",
        QUARTAPP_DATABASE_POOL_TIMEOUT="2",
    )
    release = subprocess.run(
        ["bash", "-c", procfile()["release"]],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert release.returncode == 0, release.stderr
    create_user(env)
    with ExitStack() as stack:
        started = []
        for index in range(2):
            port = free_port()
            dyno = {**env, "PORT": str(port), "WEB_CONCURRENCY": "2"}
            logs = tmp_path / f"logs-{index}"
            command = procfile_web_on_loopback()
            started.append(stack.enter_context(running(command, dyno, port, logs)))
        for dyno in started:
            dyno.wait_healthy()
        yield started


@pytest.fixture
def dynos(tmp_path: Path, postgres_server: PostgresServer | None) -> Iterator[list[Server]]:
    """Two production servers of two workers each, sharing a fresh database."""
    server = require_postgres(postgres_server)
    name = server.new_database_name()
    server.psql(f"CREATE DATABASE {name}")
    try:
        with two_dynos(server, name, tmp_path) as started:
            yield started
    finally:
        server.psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def create_user(env: dict[str, str]) -> None:
    """``users create alice``, as an operator would run it."""
    command = ["users", "create", "alice", "--password-stdin"]
    result = subprocess.run(
        [sys.executable, "-m", "quart", "--app", "quartapp", *command],
        cwd=ROOT,
        env=env,
        input=PASSWORD + "\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def log_in(browser: Browser, password: str = PASSWORD) -> int:
    token = browser.csrf_token("/login")
    form = {"username": "alice", "password": password, "csrf_token": token}
    return browser.post("/login", form).status


def test_a_login_through_one_dyno_works_on_the_other(dynos: list[Server]) -> None:
    first = Browser(dynos[0].base_url)
    second = Browser(dynos[1].base_url, first.cookies)

    assert log_in(first) == 302

    assert second.get("/hello").status == 200


def test_a_logout_through_one_dyno_ends_the_login_on_the_other(dynos: list[Server]) -> None:
    first = Browser(dynos[0].base_url)
    second = Browser(dynos[1].base_url, first.cookies)
    log_in(first)
    copied = Browser(dynos[0].base_url)
    for cookie in first.cookies:
        copied.cookies.set_cookie(cookie)

    token = second.csrf_token("/logout")
    assert second.post("/logout", {"csrf_token": token}).status == 302

    # Someone holding a copy of the old cookie is refused on the other dyno at once.
    assert copied.get("/hello").status == 302


def test_failures_through_both_dynos_add_up_to_one_lockout(dynos: list[Server]) -> None:
    browsers = [Browser(dyno.base_url) for dyno in dynos]
    for attempt in range(5):
        assert log_in(browsers[attempt % 2], WRONG) == 200

    assert log_in(browsers[0]) == 429
    assert log_in(browsers[1]) == 429


def test_stopping_the_database_gives_503s_then_both_dynos_recover(
    own_postgres: PostgresServer, tmp_path: Path
) -> None:
    with two_dynos(own_postgres, "postgres", tmp_path) as started:
        browser = Browser(started[0].base_url)
        assert log_in(browser) == 302
        other = Browser(started[1].base_url, browser.cookies)

        own_postgres.stop("fast")
        during = [browser.get("/hello"), other.get("/hello")]
        health = [dyno.healthz_status() for dyno in started]
        own_postgres.start()
        after = [browser.get("/hello").status, other.get("/hello").status]

    assert [page.status for page in during] == [503, 503]
    assert all(page.headers["Retry-After"] for page in during)
    assert health == [503, 503]
    assert after == [200, 200]
    for dyno in started:
        assert "Traceback" not in dyno.stderr
