"""The real thing: ``hypercorn --config hypercorn.toml quartapp:app``, ``make run`` and
the Procfile.

Each test that needs its own server starts one through the ``launch`` fixture
(tests/support/server.py), which always stops it; the login-flow tests share one
development server (started by ``make run``), and the tests that only read from a
production one share one Procfile web line, to stay fast.
"""

from __future__ import annotations

import http.client
import json
import re
import secrets
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from quartapp import create_app
from quartapp.bootstrap import INITIAL_ADMIN_FILE
from quartapp.db import schema
from tests.conftest import make_settings, query
from tests.support.server import (
    ROOT,
    START_TIMEOUT,
    Browser,
    Launcher,
    Server,
    database_url,
    development_env,
    exchange,
    free_port,
    procfile,
    raw_request,
    server_env,
)

pytestmark = pytest.mark.server

INVALID = "Invalid Credentials. Please try again."
NOT_VERIFIED = "The form could not be verified. Please try again."
PLACEHOLDER_KEY = "my precious"
# Production refuses to start without the host names it serves; tests reach 127.0.0.1.
LOCAL_HOSTS = '["127.0.0.1"]'


@pytest.fixture(scope="module")
def dev_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One development server as ``make run`` starts it, with its first-run ``admin``, for
    the login-flow tests and the test of what ``make run`` prints."""
    directory = tmp_path_factory.mktemp("dev-server")
    port = free_port()
    env = {k: v for k, v in development_env(directory).items() if not k.startswith("MAKE")}
    # `make run` as printed; -o: this virtualenv is installed already, skip that step.
    command = ["make", "-o", ".venv/.installed-run", "run", f"PORT={port}"]
    with Launcher(directory) as launch:
        server = launch.start(command, env, port)
        server.wait_healthy()
        yield server


@pytest.fixture
def admin_password(dev_server: Server) -> str:
    """The first-run admin's password, from the file the server wrote it to."""
    path = Path(dev_server.env["QUARTAPP_INSTANCE_PATH"]) / INITIAL_ADMIN_FILE
    return path.read_text().removesuffix("\n")


@pytest.fixture
def browser(dev_server: Server) -> Browser:
    """A fresh browser (no cookies) pointed at the development server."""
    return Browser(dev_server.base_url)


def log_in(browser: Browser, password: str, username: str = "admin") -> None:
    token = browser.csrf_token("/login")
    form = {"username": username, "password": password, "csrf_token": token}
    page = browser.post("/login", form)
    assert (page.status, page.location) == (302, "/hello"), page.text


def test_admin_logs_in_over_http_and_is_greeted(browser: Browser, admin_password: str) -> None:
    log_in(browser, admin_password)

    page = browser.get("/hello")

    assert page.status == 200
    assert "Hello, admin" in page.text


def test_logout_over_http_sends_hello_back_to_login(browser: Browser, admin_password: str) -> None:
    log_in(browser, admin_password)
    token = browser.csrf_token("/logout")

    page = browser.post("/logout", {"csrf_token": token})

    assert (page.status, page.location) == (302, "/login")
    page = browser.get("/hello")
    assert page.status == 302
    # Werkzeug leaves "/" unescaped in a query; both spellings mean the same target.
    target = urlsplit(page.location or "")
    assert (target.path, parse_qs(target.query)) == ("/login", {"next": ["/hello"]})


def test_login_post_without_csrf_token_gets_the_unverified_form_page(
    browser: Browser, admin_password: str
) -> None:
    browser.get("/login")

    page = browser.post("/login", {"username": "admin", "password": admin_password})

    assert page.status == 400
    assert NOT_VERIFIED in page.text
    assert browser.get("/hello").status == 302


def test_wrong_password_over_http_shows_the_generic_error(browser: Browser) -> None:
    token = browser.csrf_token("/login")

    page = browser.post(
        "/login", {"username": "admin", "password": "not the password at all", "csrf_token": token}
    )

    assert page.status == 200
    assert INVALID in page.text
    assert browser.get("/hello").status == 302


def assert_only_the_new_csrf_token_passes(browser: Browser, before: str) -> None:
    """The token a page showed ``before`` is refused; the one pages show now works."""
    assert browser.post("/logout", {"csrf_token": before}).status == 400
    assert browser.get("/hello").status == 200
    after = browser.csrf_token("/logout")
    assert after != before
    assert browser.post("/logout", {"csrf_token": after}).status == 302


def test_login_gives_the_session_a_new_csrf_token(browser: Browser, admin_password: str) -> None:
    before = browser.csrf_token("/login")
    form = {"username": "admin", "password": admin_password, "csrf_token": before}

    assert browser.post("/login", form).status == 302

    assert_only_the_new_csrf_token_passes(browser, before)


def new_account(server: Server) -> str:
    """A new account on ``server``'s database with the admin's password hash; its name.

    The shared server's admin keeps its password when a test changes this one's.
    """
    name = f"user{secrets.token_hex(4)}"
    query(
        dict(server.env),
        "INSERT INTO users (username, password_hash, created_at) "
        f"SELECT '{name}', password_hash, created_at FROM users WHERE username = 'admin'",
    )
    return name


def test_password_change_gives_the_session_a_new_csrf_token(
    browser: Browser, dev_server: Server, admin_password: str
) -> None:
    password = admin_password
    log_in(browser, password, new_account(dev_server))
    before = browser.csrf_token("/account/password")
    new = "a brand new passphrase, also long"
    form = {
        "current_password": password,
        "new_password": new,
        "new_password2": new,
        "csrf_token": before,
    }

    page = browser.post("/account/password", form)

    assert (page.status, page.location) == (302, "/account/sessions")
    assert_only_the_new_csrf_token_passes(browser, before)


def fail_login(browser: Browser, username: str, forwarded_for: str) -> int:
    """Post a wrong password as if relayed by a proxy for ``forwarded_for``; the status."""
    token = browser.csrf_token("/login")
    form = {"username": username, "password": "not the password at all", "csrf_token": token}
    return browser.post("/login", form, {"X-Forwarded-For": forwarded_for}).status


@pytest.mark.parametrize(
    ("hops", "other_client_status"),
    [({}, 429), ({"QUARTAPP_TRUSTED_PROXY_HOPS": "1"}, 200)],
    ids=["proxy-headers-ignored", "one-trusted-proxy"],
)
def test_forwarded_for_decides_the_client_address_only_behind_a_trusted_proxy(
    launch: Launcher, tmp_path: Path, hops: dict[str, str], other_client_status: int
) -> None:
    # The per-address login limit shows which address the app saw: with the header
    # ignored, every "client" is 127.0.0.1 and shares one count.
    env = development_env(tmp_path, QUARTAPP_LOGIN_FAILURES_PER_ADDRESS="2", **hops)
    server = launch.hypercorn(env)
    browser = Browser(server.base_url)
    assert fail_login(browser, "nobody-1", "203.0.113.1") == 200
    assert fail_login(browser, "nobody-2", "203.0.113.1") == 200

    status = fail_login(browser, "nobody-3", "203.0.113.2")

    assert status == other_client_status


def production_env(directory: Path, **settings: str) -> dict[str, str]:
    return server_env(
        directory / "instance",
        QUARTAPP_ENV="production",
        QUARTAPP_TRUSTED_HOSTS=LOCAL_HOSTS,
        DATABASE_URL=database_url(directory),
        **settings,
    )


@pytest.mark.parametrize(
    "settings",
    [{}, {"SECRET_KEY": PLACEHOLDER_KEY}],
    ids=["missing-key", "placeholder-key"],
)
def test_production_server_without_a_safe_key_stops_with_one_line_saying_why(
    launch: Launcher, tmp_path: Path, settings: dict[str, str]
) -> None:
    server = launch.hypercorn(production_env(tmp_path, **settings), wait=False)

    server.wait_exit(START_TIMEOUT)

    refusals = [
        line for line in server.stderr.splitlines() if line.startswith("quartapp: refusing")
    ]
    assert len(refusals) == 1, server.stderr
    assert "SECRET_KEY" in refusals[0]
    assert "python -m quartapp.keys" in refusals[0]
    assert PLACEHOLDER_KEY not in server.stderr + server.stdout


# The web line checks the settings before hypercorn starts its workers: hypercorn 0.18
# itself exits 0 when a worker fails (pgjones/hypercorn#269), see quartapp/serve.py.
LOUD_FAILURE_SECONDS = 10


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"SECRET_KEY": PLACEHOLDER_KEY}, "SECRET_KEY is shorter than 32 bytes"),
        (
            {"SECRET_KEY": "replace-me-with-the-output-of-python-m-quartapp-keys-print"},
            "SECRET_KEY is a published placeholder",
        ),
        ({"SECRET_KEY": "too-short-a-key"}, "SECRET_KEY is shorter than 32 bytes"),
        ({}, "SECRET_KEY is missing in production"),
        ({"SECRET_KEY": secrets.token_urlsafe(32), "DATABASE_URL": ""}, "DATABASE_URL is not set"),
    ],
    ids=["placeholder", "readme-placeholder", "short-key", "missing-key", "no-database-url"],
)
def test_procfile_web_line_exits_non_zero_at_once_with_one_line_on_bad_settings(
    launch: Launcher, tmp_path: Path, settings: dict[str, str], named: str
) -> None:
    env = server_env(
        tmp_path / "instance",
        QUARTAPP_TRUSTED_HOSTS=LOCAL_HOSTS,
        DATABASE_URL=database_url(tmp_path),
    )
    env.update(settings)
    server = launch.web(env, workers=2, wait=False)

    status = server.wait_exit(LOUD_FAILURE_SECONDS)

    assert status != 0
    assert server.stderr.splitlines() == [
        line for line in server.stderr.splitlines() if line.startswith("quartapp: refusing")
    ]
    (line,) = server.stderr.splitlines()
    assert line.startswith(f"quartapp: refusing to start: {named}")
    assert "Traceback" not in server.stderr
    assert server.stdout == ""
    for value in settings.values():
        assert not value or value not in line
    assert server.healthz_status() is None  # no worker ever served


def writable_secrets(instance: Path) -> Path:
    """A secrets.toml any user could have written (mode 0666), in a private folder."""
    instance.mkdir(mode=0o700, parents=True)
    path = instance / "secrets.toml"
    path.write_text(f'SECRET_KEY = "{"s" * 43}"\nPASSWORD_MIN_SCORE = 0\n')
    path.chmod(0o666)
    return path


def test_cli_refuses_a_secrets_file_others_can_write_in_one_error_line(tmp_path: Path) -> None:
    env = development_env(tmp_path)
    path = writable_secrets(Path(env["QUARTAPP_INSTANCE_PATH"]))

    result = subprocess.run(
        [sys.executable, "-m", "quart", "--app", "quartapp", "users", "list"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT,
        check=False,
    )

    assert (result.returncode, result.stdout) == (1, "")
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"Error: refusing to load {path}: {path} can be written by other")
    assert f"chmod 600 {path}" in line


def test_server_refuses_a_secrets_file_others_can_write_in_one_line(
    launch: Launcher, tmp_path: Path
) -> None:
    env = development_env(tmp_path)
    path = writable_secrets(Path(env["QUARTAPP_INSTANCE_PATH"]))
    server = launch.hypercorn(env, wait=False)

    server.wait_exit(START_TIMEOUT)

    refusals = [
        line for line in server.stderr.splitlines() if line.startswith("quartapp: refusing")
    ]
    assert len(refusals) == 1, server.stderr
    assert refusals[0].startswith(f"quartapp: refusing to start: refusing to load {path}: ")
    assert f"chmod 600 {path}" in refusals[0]


@pytest.mark.parametrize(
    ("settings", "name"),
    [({}, "__Host-session"), ({"QUARTAPP_SESSION_COOKIE_NAME": "quartapp"}, "quartapp")],
    ids=["derived", "configured"],
)
def test_production_session_cookie_is_host_only_and_secure(
    request: pytest.FixtureRequest,
    launch: Launcher,
    upgraded: Callable[[Path], None],
    tmp_path: Path,
    settings: dict[str, str],
    name: str,
) -> None:
    if settings:
        env = production_env(tmp_path, SECRET_KEY=secrets.token_urlsafe(32), **settings)
        upgraded(tmp_path)  # as after the release step: production refuses an older schema
        server = launch.hypercorn(env)
    else:
        # No cookie setting: the module's production web line is such a server.
        server = request.getfixturevalue("released").server

    raw = raw_request("GET", "/login", "127.0.0.1", [("Connection", "close")])
    (response,) = exchange(server.port, raw).responses

    assert response.status == 200
    (cookie,) = response.headers.get_all("Set-Cookie") or []
    attributes = [part.strip() for part in cookie.split(";")]
    assert attributes[0].startswith(f"{name}=")
    assert {"Secure", "HttpOnly", "Path=/", "SameSite=Lax"} <= set(attributes[1:])
    assert not [part for part in attributes if part.lower().startswith("domain")]


def test_procfile_web_binds_every_interface_on_the_platform_port() -> None:
    web = procfile()["web"]

    assert "--bind 0.0.0.0:$PORT" in web
    assert "--workers ${WEB_CONCURRENCY:-2}" in web


@dataclass
class Released:
    """The Procfile's web line refusing a database behind the code, then serving it."""

    refused: Server  # on the database before the release step: it stopped by itself
    status: int  # and its exit status
    server: Server  # the same line after the release step's `db upgrade`, serving


@pytest.fixture(scope="module")
def released(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Released]:
    """The Procfile's web line on a database behind the code (two workers), then, after
    the release line's upgrade, the same line serving (one worker: the check that
    refused ran before any worker, in the parent).

    test_procfile_web_line_refuses_... checks both; the tests that only read from a
    production server use the second. The command is the Procfile's, listening on
    loopback only (tests never open other interfaces).
    """
    directory = tmp_path_factory.mktemp("production-web")
    env = server_env(
        directory / "instance",
        QUARTAPP_TRUSTED_HOSTS=LOCAL_HOSTS,
        SECRET_KEY=secrets.token_urlsafe(32),
        DATABASE_URL=database_url(directory),
    )
    # A database the release step has not reached: an older revision.
    quart_in_process(env, "db", "upgrade", "0006")
    with Launcher(directory) as launch:
        refused = launch.web(env, workers=2, wait=False)
        status = refused.wait_exit(LOUD_FAILURE_SECONDS)
        # The release line's upgrade (test_procfile_release_creates_the_tables runs the
        # line itself in its own shell), then the same web line.
        quart_in_process(env, "db", "upgrade")
        server = launch.web(env, wait=False)
        server.wait_healthy()
        yield Released(refused, status, server)


def test_procfile_web_command_serves_healthz_and_logs_access_to_stdout(
    released: Released,
) -> None:
    server = released.server

    assert server.healthz_status() == 200

    # One JSON line per request, written by the app (hypercorn's own access log is off).
    assert server.access_entries(method="GET", path="/healthz", status=200)


def test_procfile_web_line_refuses_a_schema_behind_the_code_then_serves_after_release(
    released: Released,
) -> None:
    server, status = released.refused, released.status

    assert status != 0
    assert server.stderr.splitlines() == [
        f"quartapp: refusing to start: the database's schema is at revision 0006, behind "
        f"this code's {schema.head()}; run the release step first: `quart --app quartapp db "
        "upgrade` (the Procfile's release line)"
    ]
    assert "quart --app quartapp db upgrade" in procfile()["release"]

    # After the release line's upgrade the same web line serves, and /healthz names the
    # revision.
    server = released.server
    with closing(http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)) as connection:
        connection.request("GET", "/healthz")
        health = json.loads(connection.getresponse().read())
    assert health["revision"] == health["head"] == schema.head()


def test_make_run_names_the_localhost_address_and_its_sign_in_page_links_there(
    dev_server: Server,
) -> None:
    server, port = dev_server, dev_server.port

    # The address to open is localhost's; the server still listens on 127.0.0.1 only.
    assert server.stdout.startswith(f"quartapp: open http://localhost:{port}/ (passkeys need")
    assert f"--bind 127.0.0.1:{port}" in server.stdout
    page = Browser(server.base_url).get("/login")
    assert page.status == 200
    assert f'<a href="http://localhost:{port}/login">' in page.text


@pytest.fixture
def upgraded(sqlite_template: Path) -> Callable[[Path], None]:
    """Put a database at the newest revision where ``database_url(directory)`` points.

    A copy of the suite's migrated template: what ``db upgrade`` leaves, without a
    command run for each server (test_procfile_release_creates_the_tables runs it).
    """

    def copy(directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(sqlite_template, directory / "quartapp.db")

    return copy


def quart_in_process(env: Mapping[str, str], *arguments: str) -> None:
    """``quart --app quartapp ...`` on the database and instance folder of ``env``, run in
    this process: the same command on the same files, without a Python of its own."""
    directory = Path(env["QUARTAPP_INSTANCE_PATH"]).parent
    settings = make_settings(directory, DATABASE_URL=env["DATABASE_URL"])
    result = create_app(settings).test_cli_runner().invoke(args=list(arguments))
    assert result.exit_code == 0, result.output


def release_env(directory: Path, key: str) -> dict[str, str]:
    return server_env(
        directory / "instance",
        QUARTAPP_TRUSTED_HOSTS=LOCAL_HOSTS,
        SECRET_KEY=key,
        DATABASE_URL=database_url(directory),
    )


def run_release(env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", procfile()["release"]],
        cwd=ROOT,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT,
        check=False,
    )


def test_procfile_release_creates_the_tables(tmp_path: Path) -> None:
    result = run_release(release_env(tmp_path, secrets.token_urlsafe(32)))

    assert result.returncode == 0, result.stderr
    database = {"DATABASE_URL": f"sqlite:///{tmp_path / 'quartapp.db'}"}
    rows = query(database, "SELECT name FROM sqlite_master WHERE type = 'table'")
    assert {"users", "logins", "throttle_counters", "alembic_version"} <= {n for (n,) in rows}


def test_procfile_release_refuses_a_placeholder_key(tmp_path: Path) -> None:
    # The release phase runs before a deploy goes live, so this is what stops it.
    result = run_release(release_env(tmp_path, PLACEHOLDER_KEY))

    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr
    assert "python -m quartapp.keys" in result.stderr
    assert PLACEHOLDER_KEY not in result.stderr + result.stdout
    assert not (tmp_path / "quartapp.db").exists()


def test_first_run_message_gives_a_command_that_works_from_the_repository_root(
    dev_server: Server, tmp_path: Path
) -> None:
    # A newcomer copies the command from the log and pastes it in the repository root,
    # where `quart` is not on PATH: the printed command must name the venv's copy.
    # It runs against a copy of the database, so the shared server's admin is kept.
    command = re.search(r"\bwith `([^`]+)`", dev_server.stderr)
    assert command, dev_server.stderr
    words = command.group(1).split()
    assert (ROOT / words[0]).is_file(), f"{words[0]} does not exist in {ROOT}"
    source = Path(dev_server.env["DATABASE_URL"].removeprefix("sqlite:///"))
    copy = tmp_path / "copy.db"
    with closing(sqlite3.connect(source)) as old, closing(sqlite3.connect(copy)) as new:
        old.backup(new)
    env = {**dev_server.env, "PATH": "/usr/bin:/bin", "DATABASE_URL": f"sqlite:///{copy}"}

    result = subprocess.run(
        [*words, "--password-stdin"],
        cwd=ROOT,
        env=env,
        input="a new password for the admin\n",
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT,
        check=False,
    )

    assert result.returncode == 0, result.stderr
