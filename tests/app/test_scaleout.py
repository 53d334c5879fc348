"""Two app servers on one database, as two dynos are: one site to a browser.

The Procfile's own lines run here: its release step (migrate, prune) once on a fresh
PostgreSQL database, then its web line twice (production), with the same keys: one
worker each on PostgreSQL, where the two dynos are the processes that must agree; two
each on SQLite, whose test is about each worker's cache, on a copy of the suite's
migrated template with alice (test_server.py runs the release line on SQLite).
PostgreSQL is the PaaS case; SQLite is two processes on one machine, where each keeps
a cache of login rows that another process's commit must empty at once.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from quartapp import create_app
from tests.conftest import PASSWORD, make_settings, postgres_of_its_own
from tests.support.pg import PostgresServer
from tests.support.server import (
    ROOT,
    Browser,
    Launcher,
    Server,
    procfile,
    server_env,
)

# One worker runs the whole module under pytest-xdist, so its dynos start once.
pytestmark = [pytest.mark.server, pytest.mark.xdist_group("scaleout")]
WRONG = "wrong password, quite long"
# bob is the one the lockout test locks out, so alice's tests may run before or after it.
USERS = ("alice", "bob")
# Every process of a deploy, and the CLI, share one key.
KEY = secrets.token_urlsafe(32)


def production_env(tmp_path: Path, database_url: str) -> dict[str, str]:
    """The settings both servers share."""
    return server_env(
        tmp_path / "instance",
        QUARTAPP_ENV="production",
        SECRET_KEY=KEY,
        DATABASE_URL=database_url,
        QUARTAPP_TRUSTED_HOSTS='["127.0.0.1"]',
        # Plain http on loopback: a Secure cookie would never come back.
        QUARTAPP_SESSION_COOKIE_SECURE="false",
        QUARTAPP_LOGIN_FAILURES_PER_USER="5",
        QUARTAPP_DATABASE_CONNECT_TIMEOUT="2",
        QUARTAPP_DATABASE_POOL_TIMEOUT="2",
    )


@contextmanager
def two_dynos(
    tmp_path: Path, database_url: str, workers: int, users: tuple[str, ...] | None
) -> Iterator[list[Server]]:
    """The release step on ``database_url`` and ``users`` made (None: they are there
    already), then two web processes of ``workers`` each."""
    env = production_env(tmp_path, database_url)
    if users is not None:
        run(env, ["bash", "-c", procfile()["release"]])
        for name in users:
            create_user(env, name)
    with Launcher(tmp_path) as launch:
        # Both start at once, as a deploy starts its dynos, then both must serve.
        started = [launch.web(env, workers=workers, wait=False) for _ in range(2)]
        for each in started:
            each.wait_healthy()
        yield started


# The dynos are shared by the tests of this module, which change no setting: each test
# uses its own account where it changes one (a lockout), so the order does not matter.
@pytest.fixture(scope="module")
def sqlite_dynos(
    tmp_path_factory: pytest.TempPathFactory, served_sqlite_template: Path
) -> Iterator[list[Server]]:
    """Two production servers of two workers each on one SQLite file, holding alice."""
    directory = tmp_path_factory.mktemp("sqlite-dynos")
    shutil.copyfile(served_sqlite_template, directory / "quartapp.db")
    url = f"sqlite:///{directory / 'quartapp.db'}"
    with two_dynos(directory, url, workers=2, users=None) as started:
        yield started


@pytest.fixture(scope="module")
def cluster(postgres_server: PostgresServer | None) -> Iterator[PostgresServer]:
    """A PostgreSQL of this module's own: the outage test stops it, leaving others alone."""
    with postgres_of_its_own(postgres_server) as server:
        yield server


@pytest.fixture(scope="module")
def dynos(
    tmp_path_factory: pytest.TempPathFactory, cluster: PostgresServer
) -> Iterator[list[Server]]:
    """Two production servers of one worker each, sharing the module's PostgreSQL.

    The outage test stops and restarts that PostgreSQL under them, and checks that they
    recover, so the tests before or after it find them serving.
    """
    with two_dynos(
        tmp_path_factory.mktemp("dynos"), cluster.url(), workers=1, users=USERS
    ) as started:
        yield started


def create_user(env: dict[str, str], name: str = "alice") -> None:
    """``users create <name>``, as an operator would run it."""
    run_cli(env, "users", "create", name, "--password-stdin", stdin=PASSWORD + "\n")


def run_cli(env: dict[str, str], *command: str, stdin: str = "") -> None:
    """Run a ``quart --app quartapp`` command on ``env``'s database and key; it must succeed.

    It runs in the test's process, which is a process of its own to the servers: no
    Python started for it (tests/cli/test_cli.py runs the commands; the release line runs in
    a shell of its own).
    """
    directory = Path(env["QUARTAPP_INSTANCE_PATH"]).parent
    settings = make_settings(directory, DATABASE_URL=env["DATABASE_URL"], SECRET_KEY=KEY)
    result = create_app(settings).test_cli_runner().invoke(args=list(command), input=stdin)
    assert result.exit_code == 0, result.output


def run(env: dict[str, str], command: list[str], stdin: str = "") -> None:
    """Run ``command`` from the repository root, as an operator would; it must succeed."""
    result = subprocess.run(
        command,
        cwd=ROOT,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def log_in(browser: Browser, password: str = PASSWORD, username: str = "alice") -> int:
    token = browser.csrf_token("/login")
    form = {"username": username, "password": password, "csrf_token": token}
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
        assert log_in(browsers[attempt % 2], WRONG, "bob") == 200

    assert log_in(browsers[0], username="bob") == 429
    assert log_in(browsers[1], username="bob") == 429


@pytest.mark.parametrize("ending", ["logout", "revoke-sessions"])
def test_ending_a_login_is_seen_at_once_by_another_process_on_sqlite(
    sqlite_dynos: list[Server], ending: str
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
        run_cli(dict(sqlite_dynos[0].env), "users", "revoke-sessions", "alice")

    # Each copy's very first request after the logout, on whichever worker, is refused.
    for _ in range(8):
        assert holder().get("/hello").status == 302


@pytest.mark.postgres
def test_stopping_the_database_gives_503s_then_both_dynos_recover(
    cluster: PostgresServer, dynos: list[Server]
) -> None:
    browser = Browser(dynos[0].base_url)
    assert log_in(browser) == 302
    other = Browser(dynos[1].base_url, browser.cookies)

    cluster.stop("fast")
    try:
        during = [browser.get("/hello"), other.get("/hello")]
        health = [dyno.healthz_status() for dyno in dynos]
    finally:
        cluster.start()
    after = [browser.get("/hello").status, other.get("/hello").status]

    assert [page.status for page in during] == [503, 503]
    assert all(page.headers["Retry-After"] for page in during)
    assert health == [503, 503]
    assert after == [200, 200]
    for dyno in dynos:
        assert "Traceback" not in dyno.stderr
