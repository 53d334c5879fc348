"""The deploy page's local recipe, run as printed: Procfile.dev, then the Procfile's lines.

Every fenced ``sh`` block of docs/deploy.md's "Running the Procfiles locally" runs in
order in bash from the repository root, what one block exports seen by the next. A
line that starts honcho's long-running ``start`` (``-f Procfile.dev start``, ``start
web``) is started on its own, with what the lines before it exported, and must serve
until Ctrl-C (SIGINT to its process group, as a terminal sends it). The production
settings the page says the Procfile needs are given before its lines: a key, a SQLite
file, the host. Also checked: plain ``honcho start`` stops the web when the release step ends,
which is why the page says not to use it.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import time
from contextlib import closing
from pathlib import Path

import pytest

from quartapp.db import schema
from tests.support.server import (
    ROOT,
    START_TIMEOUT,
    Server,
    database_url,
    free_port,
    running,
    server_env,
)

pytestmark = pytest.mark.server

SECTION = "## Running the Procfiles locally"
SH_BLOCK = re.compile(r"^```sh\n(.*?)^```$", re.MULTILINE | re.DOTALL)
SERVING = re.compile(r"^honcho (-f \S+ )?start( web)?$")
SHELL_OWN = frozenset({"PWD", "OLDPWD", "SHLVL", "_"})
PRODUCTION = {"QUARTAPP_TRUSTED_HOSTS": '["127.0.0.1", "localhost"]'}


def section() -> str:
    page = (ROOT / "docs" / "deploy.md").read_text()
    start = page.index(SECTION + "\n")
    end = page.find("\n## ", start + len(SECTION))
    return page[start:end]


def lines() -> list[str]:
    """The section's commands, in order, comments and blank lines left out."""
    found = []
    for block in SH_BLOCK.findall(section()):
        for line in block.splitlines():
            command = line.split("  #", 1)[0].strip()
            if command:
                found.append(command)
    return found


def bash(command: str, env: dict[str, str], directory: Path) -> dict[str, str]:
    """Run one printed line in bash; the environment it leaves."""
    dump = directory / "env.dump"
    result = subprocess.run(
        ["bash", "-c", f"set -eo pipefail\n{command}\nenv -0 > {dump}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT * 2,
        check=False,
    )
    assert result.returncode == 0, f"{command} failed:\n{result.stdout}\n{result.stderr}"
    entries = dump.read_bytes().decode().split("\0")
    dump.unlink()
    return {
        name: value
        for name, value in (entry.split("=", 1) for entry in entries if "=" in entry)
        if name not in SHELL_OWN
    }


def healthz(server: Server) -> dict[str, object]:
    with closing(http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)) as connection:
        connection.request("GET", "/healthz")
        response = connection.getresponse()
        assert response.status == 200
        return dict(json.loads(response.read()))


def interrupt(server: Server) -> int:
    """Ctrl-C in the terminal: SIGINT to the foreground process group; the exit status."""
    os.killpg(server.process.pid, signal.SIGINT)
    return server.process.wait(START_TIMEOUT)


@pytest.fixture
def machine(tmp_path: Path) -> dict[str, str]:
    """A shell's environment without the virtualenv on PATH; the instance folder in tmp."""
    env = server_env(tmp_path / "instance", PORT=str(free_port()))
    env["PATH"] = os.pathsep.join(
        part for part in env["PATH"].split(os.pathsep) if not part.endswith("/.venv/bin")
    )
    return {name: value for name, value in env.items() if not name.startswith("MAKE")}


def test_the_section_has_both_recipes() -> None:
    assert lines() == [
        'export PATH="$PWD/.venv/bin:$PATH"',
        "honcho -f Procfile.dev start",
        "honcho start release",
        "honcho start web",
    ]
    dev = (ROOT / "Procfile.dev").read_text().splitlines()
    assert [line.split(":", 1)[0] for line in dev] == ["web"]
    assert "--bind 127.0.0.1:$PORT" in dev[0]


def test_the_local_recipe_works_as_printed(machine: dict[str, str], tmp_path: Path) -> None:
    env = dict(machine)
    served = []
    for number, line in enumerate(lines()):
        if line == "honcho start release":
            # What the page says the Procfile needs: the production settings.
            env.update(PRODUCTION, SECRET_KEY=secrets.token_urlsafe(32))
            env["DATABASE_URL"] = database_url(tmp_path / "production")
            (tmp_path / "production").mkdir()
        if not SERVING.match(line):
            env = bash(line, env, tmp_path)
            continue
        port = int(env["PORT"])
        logs = tmp_path / f"honcho-{number}"
        with running(["bash", "-c", line], env, port, logs) as server:
            server.wait_healthy()
            health = healthz(server)
            # It keeps serving: nothing else in its Procfile ends and takes it down.
            time.sleep(1)
            assert server.process.poll() is None, server.stdout
            status = interrupt(server)
        assert health["revision"] == health["head"] == schema.head()
        assert status in (0, 130, -signal.SIGINT), server.stdout
        # honcho prefixes each line with the process; only web ran.
        names = set(re.findall(r"^\S+ (\w+)\.\d+\s+\|", server.stdout, re.MULTILINE))
        names |= set(re.findall(r"^\S+ (\w+)\s+\|", server.stdout, re.MULTILINE))
        assert names <= {"web", "system"}, server.stdout
        served.append(line)
    assert served == ["honcho -f Procfile.dev start", "honcho start web"]


def test_plain_honcho_start_stops_the_web_when_the_release_step_ends(
    machine: dict[str, str], tmp_path: Path, sqlite_template: Path
) -> None:
    env = {
        **machine,
        **PRODUCTION,
        "SECRET_KEY": secrets.token_urlsafe(32),
        "DATABASE_URL": database_url(tmp_path),
        "PATH": f"{ROOT / '.venv' / 'bin'}{os.pathsep}{machine['PATH']}",
    }
    port = int(env["PORT"])
    # Released once already, so the web line starts (on an older schema it would refuse,
    # racing the release step: plain `honcho start` fails either way). The suite's
    # migrated file is what a release leaves; the recipe test above runs the release.
    shutil.copyfile(sqlite_template, tmp_path / "quartapp.db")

    with running(["honcho", "start"], env, port, tmp_path / "plain") as server:
        status = server.process.wait(START_TIMEOUT * 2)

    # The release line ends (0), and honcho takes the web down with it.
    assert re.search(r"release\.1 .*stopped \(rc=0\)", server.stdout), server.stdout
    assert re.search(r"web\.1 .*stopped", server.stdout), server.stdout
    assert status == 0
