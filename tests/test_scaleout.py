"""Two app servers on one database, as two dynos are: one site to a browser.

Each runs the way the Procfile's web line does (production, ``--workers 2``), after
the release step's migration, with the same keys and database: PostgreSQL, and SQLite
for two processes on one machine, where each keeps a cache of login rows.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from .conftest import PASSWORD, require_postgres
from .pg import PostgresServer
from .server import (
    ROOT,
    Browser,
    Server,
    free_port,
    hypercorn_command,
    init_db,
    running,
    server_env,
)

pytestmark = [pytest.mark.server]
WRONG = "wrong password, quite long"


def production_env(tmp_path: Path, database_url: str) -> dict[str, str]:
    """The settings both servers share."""
    return server_env(
        tmp_path / "instance",
        QUARTAPP_ENV="production",
        SECRET_KEY=secrets.token_urlsafe(32),
        DATABASE_URL=database_url,
        QUARTAPP_TRUSTED_HOSTS='["127.0.0.1"]',
        # Plain http on loopback: a Secure cookie would never come back.
        QUARTAPP_SESSION_COOKIE_SECURE="false",
        QUARTAPP_LOGIN_FAILURES_PER_USER="5",
    )


def serve_two(stack: ExitStack, tmp_path: Path, env: dict[str, str]) -> list[Server]:
    """Start two servers of two workers each on ``env`` and wait until both answer."""
    started = []
    for index in range(2):
        port = free_port()
        command = hypercorn_command(port, "--workers", "2")
        logs = tmp_path / f"logs-{index}"
        started.append(stack.enter_context(running(command, env, port, logs)))
    for dyno in started:
        dyno.wait_healthy()
    return started


@pytest.fixture
def sqlite_dynos(tmp_path: Path) -> Iterator[list[Server]]:
    """Two production servers of two workers each on one SQLite file."""
    env = production_env(tmp_path, f"sqlite:///{tmp_path / 'quartapp.db'}")
    init_db(env)
    create_user(env)
    with ExitStack() as stack:
        yield serve_two(stack, tmp_path, env)


@pytest.fixture
def dynos(tmp_path: Path, postgres_server: PostgresServer | None) -> Iterator[list[Server]]:
    """Two production servers of two workers each, sharing a fresh database."""
    server = require_postgres(postgres_server)
    name = server.new_database_name()
    server.psql(f"CREATE DATABASE {name}")
    env = production_env(tmp_path, server.url(name))
    init_db(env)
    create_user(env)
    try:
        with ExitStack() as stack:
            yield serve_two(stack, tmp_path, env)
    finally:
        server.psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def create_user(env: dict[str, str]) -> None:
    """``users create alice``, as an operator would run it."""
    run_cli(env, "users", "create", "alice", "--password-stdin", stdin=PASSWORD + "\n")


def run_cli(env: dict[str, str], *command: str, stdin: str = "") -> None:
    """Run a ``quart --app quartapp`` command in its own process; it must succeed."""
    result = subprocess.run(
        [sys.executable, "-m", "quart", "--app", "quartapp", *command],
        cwd=ROOT,
        env=env,
        input=stdin,
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


@pytest.mark.postgres
def test_a_login_through_one_dyno_works_on_the_other(dynos: list[Server]) -> None:
    first = Browser(dynos[0].base_url)
    second = Browser(dynos[1].base_url, first.cookies)

    assert log_in(first) == 302

    assert second.get("/hello").status == 200


@pytest.mark.postgres
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


@pytest.mark.postgres
def test_failures_through_both_dynos_add_up_to_one_lockout(dynos: list[Server]) -> None:
    browsers = [Browser(dyno.base_url) for dyno in dynos]
    for attempt in range(5):
        assert log_in(browsers[attempt % 2], WRONG) == 200

    assert log_in(browsers[0]) == 429
    assert log_in(browsers[1]) == 429


@pytest.mark.parametrize("ending", ["logout", "revoke-sessions"])
def test_ending_a_login_is_seen_at_once_by_another_process_on_sqlite(
    sqlite_dynos: list[Server], tmp_path: Path, ending: str
) -> None:
    first = Browser(sqlite_dynos[0].base_url)
    log_in(first)
    cookies = list(first.cookies)

    def holder() -> Browser:
        """A browser on the second server holding a copy of the login cookie."""
        browser = Browser(sqlite_dynos[1].base_url)
        for cookie in cookies:
            browser.cookies.set_cookie(cookie)
        return browser

    # New connections land on either worker: both have the row cached by now.
    for _ in range(8):
        assert holder().get("/hello").status == 200

    if ending == "logout":
        token = first.csrf_token("/logout")
        assert first.post("/logout", {"csrf_token": token}).status == 302
    else:
        env = production_env(tmp_path, f"sqlite:///{tmp_path / 'quartapp.db'}")
        run_cli(env, "users", "revoke-sessions", "alice")

    # Each copy's very first request after the logout, on whichever worker, is refused.
    for _ in range(8):
        assert holder().get("/hello").status == 302
