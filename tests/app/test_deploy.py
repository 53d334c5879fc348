"""The deploy page's Procfile section, run as printed: it cannot drift from what works.

Every fenced ``sh`` block of docs/deploy.md's "Deploying with the Procfile" runs in
order in bash from the repository root, as an operator would paste it, with only the
documented placeholder replaced: the ``DATABASE_URL`` value, by a fresh database on the real
PostgreSQL. What one block exports, the next one sees. ``python3`` on the ``PATH`` is
the machine's own, without this project's packages (the keys tool must work with a
bare Python); the virtualenv's ``bin`` comes after it, for ``quart``.

Once the release step has run, the Procfile's web line serves; like a PaaS, the test
restarts it whenever a block changes a setting. Requests come as a router sends them:
``Host: myapp.example.com`` (the page's host name, which needs no replacing here),
``X-Forwarded-Proto: https`` and ``X-Forwarded-For``. Around the blocks the test
checks what each step promises: the first user signs in, the one-off commands answer,
a custom domain is refused and then served, and a cookie made before the key rotation
still works after it and after the fallback is dropped.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import shlex
import subprocess
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from quartapp.keys.retire import RETIRED_VARIABLE, fingerprint
from tests.conftest import PASSWORD, require_postgres
from tests.support.pg import PostgresServer
from tests.support.server import (
    BIN,
    CSRF_INPUT,
    INPUT_VALUE,
    REQUEST_TIMEOUT,
    ROOT,
    START_TIMEOUT,
    Launcher,
    Server,
    procfile,
    server_env,
)

pytestmark = [pytest.mark.server, pytest.mark.postgres]

SECTION = "## Deploying with the Procfile"
SH_BLOCK = re.compile(r"^```sh\n(.*?)^```$", re.MULTILINE | re.DOTALL)
# The one value the page says to replace, and the host names it says are examples.
DATABASE_PLACEHOLDER = "postgres://USER:PASSWORD@HOST:5432/DBNAME"
HOST = "myapp.example.com"
# Settings the web process reads: a change to one restarts it, as a PaaS does.
APP_SETTINGS = re.compile(r"^(QUARTAPP_\w+|SECRET_KEY|SECRET_KEY_FALLBACKS|DATABASE_URL)$")
# What bash adds to its own environment; not settings.
SHELL_OWN = frozenset({"PWD", "OLDPWD", "SHLVL", "_"})


def deploy_section() -> str:
    page = (ROOT / "docs" / "deploy.md").read_text()
    start = page.index(SECTION + "\n")
    end = page.find("\n## ", start + len(SECTION))
    return page[start : end if end != -1 else None]


def deploy_blocks() -> list[str]:
    """The section's ``sh`` blocks, in order."""
    return SH_BLOCK.findall(deploy_section())


def bare_path() -> str:
    """The machine's PATH without this virtualenv, then the virtualenv's bin last."""
    parts = [
        part
        for part in os.environ.get("PATH", "").split(os.pathsep)
        if part and Path(part).resolve() != BIN.resolve()
    ]
    return os.pathsep.join([*parts, str(BIN)])


@dataclass
class Shell:
    """An operator's shell: each block runs in bash with what the blocks before exported."""

    directory: Path
    env: dict[str, str]
    outputs: list[str] = field(default_factory=list)

    def run(self, block: str, stdin: str) -> str:
        dump = self.directory / "env.dump"
        script = f"set -eo pipefail\n{block}\nenv -0 > {shlex.quote(str(dump))}\n"
        result = subprocess.run(
            ["bash", "-c", script],
            cwd=ROOT,
            env=self.env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT * 2,
            check=False,
        )
        assert result.returncode == 0, f"this block failed:\n{block}\n{result.stderr}"
        entries = dump.read_bytes().decode().split("\0")
        dump.unlink()
        self.env = {
            name: value
            for name, value in (entry.split("=", 1) for entry in entries if "=" in entry)
            if name not in SHELL_OWN
        }
        self.outputs.append(result.stdout)
        return result.stdout

    def settings(self) -> dict[str, str]:
        return {name: value for name, value in self.env.items() if APP_SETTINGS.match(name)}


class Router:
    """What a PaaS router sends on: the site's Host, https, the client's address."""

    def __init__(self, host: str = HOST) -> None:
        self.host = host
        self.cookies: dict[str, str] = {}

    def request(
        self, server: Server, method: str, path: str, form: Mapping[str, str] | None = None
    ) -> tuple[int, dict[str, str], str]:
        headers = {
            "Host": self.host,
            "X-Forwarded-Proto": "https",
            "X-Forwarded-For": "203.0.113.7",
        }
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if form is not None:
            body = urllib.parse.urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            # A browser's same-origin Referer, which CSRF checks on https.
            headers["Referer"] = f"https://{self.host}{path}"
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=REQUEST_TIMEOUT)
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            text = response.read().decode()
            for header in response.headers.get_all("Set-Cookie") or []:
                name, _, rest = header.partition("=")
                value = rest.split(";", 1)[0]
                if value:
                    self.cookies[name] = value
                else:
                    self.cookies.pop(name, None)
            return response.status, {k.lower(): v for k, v in response.headers.items()}, text
        finally:
            connection.close()

    def sign_in(self, server: Server, username: str) -> None:
        status, _, page = self.request(server, "GET", "/login")
        assert status == 200, page
        field = CSRF_INPUT.search(page)
        assert field is not None
        token = INPUT_VALUE.search(field.group(0))
        assert token is not None
        form = {"username": username, "password": PASSWORD, "csrf_token": token.group(1)}
        status, headers, page = self.request(server, "POST", "/login", form)
        assert (status, headers.get("location")) == (302, "/hello"), page

    def hello(self, server: Server) -> tuple[int, str]:
        status, _, page = self.request(server, "GET", "/hello")
        return status, page


class Web:
    """The Procfile's web line, restarted whenever the settings change.

    A restart does not wait for the new server: ``ready`` does, when a request needs it.
    So the web line started after the release step boots while the next block (the
    first ``users create``) runs, as a PaaS's dyno boots while an operator runs a one-off.
    """

    def __init__(self, launch: Launcher) -> None:
        self.launch = launch
        self.server: Server | None = None
        self.settings: dict[str, str] = {}
        self.healthy = False

    @property
    def starts(self) -> int:
        return self.launch.starts

    def serve(self, settings: dict[str, str]) -> None:
        """Start the web line on ``settings``, unless it runs on them already."""
        if self.server is not None and settings == self.settings:
            return
        if self.server is not None:
            self.server.stop()
        env = server_env(self.launch.directory / "instance")
        env.update(settings)
        self.server = self.launch.web(env, wait=False)
        self.healthy = False
        self.settings = dict(settings)

    def ready(self) -> Server:
        """The running web line, once it answers ``/healthz``."""
        assert self.server is not None
        if not self.healthy:
            wait_healthy(self.server)
            self.healthy = True
        return self.server


def wait_healthy(server: Server) -> None:
    """Wait for ``GET /healthz`` through the router: the site refuses its bare address."""
    router = Router()
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        code = server.process.poll()
        if code is not None:
            pytest.fail(f"the web line exited with {code}:\n{server.stderr}")
        with contextlib.suppress(OSError):
            if router.request(server, "GET", "/healthz")[0] == 200:
                return
        time.sleep(0.1)
    pytest.fail(f"the web line did not answer /healthz:\n{server.stderr}")


@pytest.fixture
def database(postgres_server: PostgresServer | None) -> str:
    """A new, empty database on the session's PostgreSQL, as a ``postgres://`` URL."""
    server = require_postgres(postgres_server)
    name = server.new_database_name()
    server.psql(f"CREATE DATABASE {name}")
    return server.url(name).replace("postgresql://", "postgres://", 1)


@pytest.fixture
def web(launch: Launcher) -> Web:
    return Web(launch)


def test_the_section_covers_every_step() -> None:
    text = "\n".join(deploy_blocks())

    for needed in (
        "export QUARTAPP_ENV=production",
        "python3 -m quartapp.keys --print",
        "export DATABASE_URL=",
        "QUARTAPP_TRUSTED_HOSTS=",
        "users create",
        "--password-stdin",
        "users list",
        "python3 -m quartapp.keys --rotate",
        "unset SECRET_KEY_FALLBACKS",
    ):
        assert needed in text, needed
    assert text.count(DATABASE_PLACEHOLDER) == 1
    # The release step printed is the Procfile's: the same commands, in the same order.
    release = [
        part.strip()
        for part in procfile()["release"].split("&&")
        if not part.strip().startswith("export ")
    ]
    lines = [line.strip() for line in text.splitlines()]
    positions = [lines.index(command) for command in release]
    assert positions == sorted(positions)


def test_the_deploy_section_works_as_printed(database: str, web: Web, tmp_path: Path) -> None:
    base = {
        name: value
        for name, value in server_env(tmp_path / "instance").items()
        if name not in ("PATH",)
    }
    shell = Shell(tmp_path, {**base, "PATH": bare_path()})
    # The machine's python3 must lack the project's packages, or "bare" proves nothing.
    bare = subprocess.run(
        ["python3", "-c", "import hypercorn"],
        env=shell.env,
        capture_output=True,
        check=False,
    )
    assert bare.returncode != 0, "python3 on the PATH has hypercorn: not a bare Python"
    username = None
    router = Router()
    rotated_from = None

    for block in deploy_blocks():
        block = block.replace(DATABASE_PLACEHOLDER, database)
        before = shell.settings()
        added_hosts = new_hosts(block, before)
        if added_hosts and web.server is not None:
            # Before the domain is added: a 400, and one line that names it.
            other = Router(added_hosts[0])
            status, _, _ = other.request(web.ready(), "GET", "/")
            assert status == 400
            assert f"refused a request for host '{added_hosts[0]}'" in web.server.stderr

        output = shell.run(block, stdin=f"{PASSWORD}\n")

        settings = shell.settings()
        if "db upgrade" in block:
            assert settings["QUARTAPP_ENV"] == "production"
            assert len(settings["SECRET_KEY"]) >= 43
        created = re.search(r"users create (\S+)", block)
        if created:
            username = created.group(1)
        if "users list" in block:
            assert username is not None
            assert re.search(rf"^{re.escape(username)}\t", output, re.M), output
        if "db current" in block:
            assert re.search(r"^\S+ \(head\)$", output, re.M), output
        if "--rotate" in block:
            rotated_from = before["SECRET_KEY"]
            assert settings["SECRET_KEY"] != rotated_from
            assert json.loads(settings["SECRET_KEY_FALLBACKS"]) == [rotated_from]
            # The keys tool's record of when it retired the old key, for the next rotation.
            assert list(json.loads(shell.env[RETIRED_VARIABLE])) == [fingerprint(rotated_from)]
            assert not (tmp_path / "instance" / "secrets.toml").exists()

        if "db upgrade" in block or web.server is not None:
            web.serve(settings)
            if username is not None and not router.cookies:
                router.sign_in(web.ready(), username)
                assert "__Host-session" in router.cookies  # production: a Secure cookie
            if router.cookies:
                status, page = router.hello(web.ready())
                assert status == 200, page
                assert f"Hello, {username}!" in page
            for host in added_hosts:
                status, _, _ = Router(host).request(web.ready(), "GET", "/")
                assert status == 200

    assert username is not None, "no block created a user"
    assert rotated_from is not None, "no block rotated the key"
    assert "SECRET_KEY_FALLBACKS" not in shell.settings()
    assert web.starts >= 4  # release, custom domain, rotation, dropped fallback


def new_hosts(block: str, settings: Mapping[str, str]) -> list[str]:
    """Host names a block's TRUSTED_HOSTS adds to the current ones."""
    match = re.search(r"QUARTAPP_TRUSTED_HOSTS='(\[.*?\])'", block)
    if match is None or "QUARTAPP_TRUSTED_HOSTS" not in settings:
        return []
    old = json.loads(settings["QUARTAPP_TRUSTED_HOSTS"])
    return [host for host in json.loads(match.group(1)) if host not in old]
