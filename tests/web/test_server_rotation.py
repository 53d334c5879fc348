"""Rotating an environment-configured SECRET_KEY under the Procfile's web line.

What an operator on a PaaS does, as docs/deploy.md says: two instances
(dynos) on one database, serving with the old key; ``python -m quartapp.keys --rotate``
prints the two settings; both instances restart with them; a cookie made before still
works on either instance and comes back signed with the new key; and once the fallback
is dropped, the re-signed cookie still works while the old one does not.
"""

from __future__ import annotations

import http.client
import json
import secrets
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest

from tests.conftest import PASSWORD
from tests.support.server import (
    REQUEST_TIMEOUT,
    ROOT,
    START_TIMEOUT,
    Browser,
    Launcher,
    Server,
    database_url,
    server_env,
)
from tests.web.test_sessions import verifies_under

pytestmark = pytest.mark.server


def settings(directory: Path, **keys: str) -> dict[str, str]:
    """One deploy's environment: production (from the Procfile), one database file."""
    env = server_env(
        directory / "instance",
        QUARTAPP_TRUSTED_HOSTS='["127.0.0.1"]',
        # The test speaks plain HTTP; a real deploy keeps Secure cookies behind HTTPS.
        QUARTAPP_SESSION_COOKIE_SECURE="false",
        DATABASE_URL=database_url(directory),
    )
    env.update(keys)
    return env


def run(command: list[str], env: Mapping[str, str], stdin: str = "") -> str:
    result = subprocess.run(
        command,
        cwd=ROOT,
        env=dict(env),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


class Deploy:
    """Two instances of the web line on one database, restarted with new settings."""

    def __init__(self, launch: Launcher) -> None:
        self.launch = launch
        self.instances: list[Server] = []

    def start(self, env: Mapping[str, str]) -> list[Server]:
        # Both start at once, as a platform restarts its dynos, then both must serve;
        # the old ones stop while the new ones boot (each on a port of its own).
        old, self.instances = self.instances, [self.launch.web(env, wait=False) for _ in range(2)]
        for server in old:
            server.stop()
        for server in self.instances:
            server.wait_healthy()
        return self.instances


@pytest.fixture
def deploy(launch: Launcher) -> Deploy:
    return Deploy(launch)


def hello(server: Server, cookie: str) -> tuple[int, str | None]:
    """``GET /hello`` with a session cookie: the status and any new session cookie."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=REQUEST_TIMEOUT)
    try:
        connection.request("GET", "/hello", headers={"Cookie": f"session={cookie}"})
        response = connection.getresponse()
        response.read()
        sent = None
        for header in response.headers.get_all("Set-Cookie") or []:
            name, _, rest = header.partition("=")
            if name == "session":
                sent = rest.split(";", 1)[0]
        return response.status, sent
    finally:
        connection.close()


def rotated(env: Mapping[str, str]) -> dict[str, str]:
    """The settings ``python -m quartapp.keys --rotate`` prints, as a shell sets them."""
    printed = run([sys.executable, "-m", "quartapp.keys", "--rotate"], env)
    script = f"export {printed.replace(chr(10), ' ')}\n" + (
        f"{sys.executable} -c 'import json, os; print(json.dumps("
        '{k: os.environ[k] for k in ("SECRET_KEY", "SECRET_KEY_FALLBACKS")}))\''
    )
    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True)
    return dict(json.loads(result.stdout))


def test_rotating_the_environment_key_keeps_cookies_and_resigns_them(
    deploy: Deploy, tmp_path: Path, served_sqlite_template: Path
) -> None:
    old_key = secrets.token_urlsafe(32)
    env = settings(tmp_path, SECRET_KEY=old_key)
    # A migrated database holding alice (PASSWORD), as the release step and `users create`
    # leave it (test_server.py and test_cli.py run those).
    shutil.copyfile(served_sqlite_template, tmp_path / "quartapp.db")

    first, second = deploy.start(env)
    browser = Browser(first.base_url)
    token = browser.csrf_token("/login")
    assert browser.post(
        "/login", {"username": "alice", "password": PASSWORD, "csrf_token": token}
    ).location
    (cookie,) = [c.value for c in browser.cookies if c.name == "session"]
    assert cookie is not None
    # The first page takes the login's flash out of the cookie, so it sends a new one.
    status, flashed = hello(second, cookie)  # the instances share the login
    assert status == 200
    assert flashed is not None
    cookie = flashed
    # From here on an ordinary page sends no cookie: a new one later is the re-signing.
    assert hello(first, cookie) == (200, None)
    assert verifies_under(old_key, cookie)

    new = rotated(env)
    assert new["SECRET_KEY"] != old_key
    assert json.loads(new["SECRET_KEY_FALLBACKS"]) == [old_key]
    assert not (tmp_path / "instance" / "secrets.toml").exists()  # nothing was written
    first, second = deploy.start({**env, **new})

    status, resigned = hello(first, cookie)

    assert status == 200
    assert resigned is not None
    assert verifies_under(new["SECRET_KEY"], resigned)
    assert not verifies_under(old_key, resigned)
    assert hello(second, resigned) == (200, None)  # on the new key: nothing to re-sign
    assert hello(second, cookie)[0] == 200  # the old cookie, on the other instance

    # After the longest session lifetime the fallback goes; re-signed cookies stay.
    first, second = deploy.start({**env, "SECRET_KEY": new["SECRET_KEY"]})

    assert hello(first, resigned)[0] == 200
    assert hello(second, cookie)[0] == 302
