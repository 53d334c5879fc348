"""Issue 12's findings on ratings and logins per user, replayed on a real hypercorn.

Each runs on SQLite and on PostgreSQL, against a production server with one worker.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from .conftest import DATABASES, PASSWORD, require_postgres
from .pg import PostgresServer
from .server import ROOT, Browser, Server, free_port, hypercorn_command, init_db, running
from .server import server_env as base_env

pytestmark = pytest.mark.server
WRONG = "wrong password, quite long"
WRONG_CURRENT = "Your current password is wrong."
CREATE_ALICE = ["users", "create", "alice", "--password-stdin"]
Start = Callable[..., Server]


@pytest.fixture(params=DATABASES)
def database_url(
    request: pytest.FixtureRequest, tmp_path: Path, postgres_server: PostgresServer | None
) -> Iterator[str]:
    """An empty database for the server of one test."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'quartapp.db'}"
        return
    server = require_postgres(postgres_server)
    name = server.new_database_name()
    server.psql(f"CREATE DATABASE {name}")
    try:
        yield server.url(name)
    finally:
        server.psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def start(tmp_path: Path, database_url: str) -> Iterator[Start]:
    """Start a production server on the test's database, with alice created."""
    with ExitStack() as stack:

        def start_server(**settings: str) -> Server:
            env = base_env(
                tmp_path / "instance",
                QUARTAPP_ENV="production",
                SECRET_KEY=secrets.token_urlsafe(32),
                DATABASE_URL=database_url,
                QUARTAPP_TRUSTED_HOSTS='["127.0.0.1"]',
                QUARTAPP_SESSION_COOKIE_SECURE="false",
                **settings,
            )
            init_db(env)
            result = subprocess.run(
                [sys.executable, "-m", "quart", "--app", "quartapp", *CREATE_ALICE],
                cwd=ROOT,
                env=env,
                input=PASSWORD + "\n",
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert result.returncode == 0, result.stderr
            port = free_port()
            server = stack.enter_context(
                running(hypercorn_command(port), env, port, tmp_path / "logs")
            )
            server.wait_healthy()
            return server

        yield start_server


def log_in(server: Server) -> Browser:
    browser = Browser(server.base_url)
    form = {"username": "alice", "password": PASSWORD, "csrf_token": browser.csrf_token("/login")}
    page = browser.post("/login", form)
    assert (page.status, page.location) == (302, "/hello"), page.text
    return browser


def change_password(browser: Browser, current: str, new: str) -> tuple[int, str]:
    form = {
        "current_password": current,
        "new_password": new,
        "new_password2": new,
        "csrf_token": browser.csrf_token("/account/password"),
    }
    page = browser.post("/account/password", form)
    return page.status, page.text


def test_wrong_current_passwords_are_judged_before_the_new_one(start: Start) -> None:
    # Before, a guessable new password was refused on its rating first: never a wrong
    # current password, never a 429, and a rating for each request.
    browser = log_in(start())

    answers = [change_password(browser, WRONG, "passwordpassword") for _ in range(6)]

    assert [status for status, _ in answers] == [200] * 5 + [429]
    assert all(WRONG_CURRENT in text and "too easy" not in text for _, text in answers[:5])


def test_a_login_past_the_cap_logs_the_oldest_device_out(start: Start) -> None:
    server = start(QUARTAPP_LOGINS_PER_USER_MAX="3")

    browsers = [log_in(server) for _ in range(4)]

    statuses = [browser.get("/hello").status for browser in browsers]
    assert statuses == [302, 200, 200, 200]
    page = browsers[-1].get("/account/sessions").text
    assert page.count('class="session-title"') == 3
    assert "You can stay signed in on up to 3 devices; a new sign-in ends the oldest." in page
