"""The production shape (issue 13): logged-in ``/hello`` on PostgreSQL, across a network.

One PostgreSQL 15 cluster (the test suite's set-up, ``tests/support/pg.py``) holds a database
per app. Each app reaches its database through ``bench/proxy.py``, which holds every
chunk for 0 ms or 1 ms each way, as a managed database in the same region would. The
apps, one worker each on 127.0.0.1:

- quartapp as the Procfile runs it: the release line (``db upgrade``, ``db prune``)
  first, then the web line, production mode, ``WEB_CONCURRENCY=1``;
- Flask-Login + Flask-SQLAlchemy (``bench/apps/flask_login_app.py``, psycopg 3) on
  gunicorn ``sync``;
- the same on gunicorn ``gthread`` with 8 threads.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench import servers
from bench.servers import BenchError, Server
from tests.support.pg import INSTALL_HINT, PostgresServer, find_bin_dir, make_server

DELAYS_MS = (0, 1)
QUARTAPP_PG = "quartapp-procfile"
# Passed from the bench's environment to quartapp's (see start_quartapp).
POOL_SETTINGS = ("QUARTAPP_DATABASE_POOL_SIZE", "QUARTAPP_DATABASE_MAX_OVERFLOW")
FLASK_SYNC = "flask-login-pg-sync"
FLASK_GTHREAD = "flask-login-pg-gthread8"
APPS = (QUARTAPP_PG, FLASK_SYNC, FLASK_GTHREAD)
DATABASES = {QUARTAPP_PG: "quartapp", FLASK_SYNC: "flask_sync", FLASK_GTHREAD: "flask_gthread"}
GTHREAD_THREADS = 8
PROCFILE_LINE = re.compile(r"^([A-Za-z0-9_]+):\s*(.+)$")


def scenario(delay_ms: int) -> str:
    """The report's name for the scenario at ``delay_ms`` each way."""
    return f"pg+{delay_ms}ms"


def title(delay_ms: int) -> str:
    return f"PostgreSQL +{delay_ms} ms, /hello"


def unavailable() -> str | None:
    """Why the scenario cannot run on this machine, or None when it can."""
    if find_bin_dir() is None:
        return INSTALL_HINT
    if importlib.util.find_spec("psycopg") is None:
        return "psycopg is not installed: make install-bench"
    return None


def procfile() -> dict[str, str]:
    """The Procfile's commands by process type."""
    entries = {}
    for line in (servers.ROOT / "Procfile").read_text().splitlines():
        if match := PROCFILE_LINE.match(line):
            entries[match.group(1)] = match.group(2)
    return entries


class Proxy:
    """The delay proxy process: one listener per app, one delay for all."""

    def __init__(self, upstream: int, count: int, logs: Path) -> None:
        with (logs / "proxy.err").open("wb") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "bench.proxy", *[str(upstream)] * count],
                cwd=servers.ROOT,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
            )
        self.ports: list[int] = self._reply()["ports"]

    def _reply(self) -> dict[str, list[int]]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise BenchError(f"the delay proxy exited ({self.process.wait()})")
        return dict(json.loads(line))

    def set_delay(self, delay_ms: int) -> None:
        """Hold chunks ``delay_ms`` each way from now on; returns once the proxy has it."""
        assert self.process.stdin is not None
        self.process.stdin.write(f"{delay_ms}\n")
        self.process.stdin.flush()
        self._reply()

    def stop(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()  # end of stdin: the proxy stops listening and exits
        try:
            self.process.wait(servers.STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        finally:
            assert self.process.stdout is not None
            self.process.stdout.close()


@dataclass
class Cluster:
    """The running cluster and the proxied URL of each app's database."""

    postgres: PostgresServer
    proxy: Proxy
    ports: dict[str, int]  # the proxy's listening port for each app

    def url(self, app: str, scheme: str = "postgresql") -> str:
        return f"{scheme}://postgres@127.0.0.1:{self.ports[app]}/{DATABASES[app]}"


@contextmanager
def cluster(apps: list[str], logs: Path) -> Iterator[Cluster]:
    """A fresh cluster with a database per app in ``apps``, behind one delay proxy."""
    bin_dir = find_bin_dir()
    if bin_dir is None:
        raise BenchError(INSTALL_HINT)
    postgres = make_server(bin_dir)
    proxy = None
    try:
        postgres.start()
        for app in apps:
            postgres.psql(f"CREATE DATABASE {DATABASES[app]}")
        proxy = Proxy(postgres.port, len(apps), logs)
        yield Cluster(postgres, proxy, dict(zip(apps, proxy.ports, strict=True)))
    finally:
        if proxy is not None:
            proxy.stop()
        postgres.stop("immediate")
        shutil.rmtree(postgres.root.parent, ignore_errors=True)


def start(app: str, pg: Cluster, folder: Path, logs: Path) -> tuple[Server, tuple[str, str]]:
    """Start ``app`` on its proxied database; the server and the login to use."""
    folder.mkdir(parents=True, exist_ok=True)
    if app == QUARTAPP_PG:
        return start_quartapp(pg, folder, logs)
    worker = ["--worker-class", "sync"]
    if app == FLASK_GTHREAD:
        worker = ["--worker-class", "gthread", "--threads", str(GTHREAD_THREADS)]
    env = servers.clean_env(BENCH_DATABASE_URL=pg.url(app, "postgresql+psycopg"))
    command = [
        str(servers.BIN / "gunicorn"),
        "--workers",
        "1",
        *worker,
        "--bind",
        "127.0.0.1:{port}",
        "bench.apps.flask_login_app:app",
    ]
    return servers.start(app, command, env, logs), ("admin", "admin")


def start_quartapp(pg: Cluster, folder: Path, logs: Path) -> tuple[Server, tuple[str, str]]:
    """The Procfile's release line, then its web line and a user made with the CLI.

    The web line starts as the CLI makes the user: both need only the release's schema,
    and each is a Python process starting, so neither waits for the other.

    The pool's settings pass through from the bench's own environment, to measure
    other sizes: ``QUARTAPP_DATABASE_POOL_SIZE=8 make bench BENCH_ARGS="--scenarios pg"``.
    """
    env = servers.clean_env(
        SECRET_KEY=secrets.token_urlsafe(32),
        DATABASE_URL=pg.url(QUARTAPP_PG),
        QUARTAPP_INSTANCE_PATH=str(folder / "instance"),
        QUARTAPP_TRUSTED_HOSTS='["127.0.0.1"]',
        WEB_CONCURRENCY="1",
        **{name: os.environ[name] for name in POOL_SETTINGS if name in os.environ},
    )
    lines = procfile()
    run(["bash", "-c", lines["release"]], env, "the Procfile's release line")
    # The dyno's $PORT is the free port servers.start picks; loopback, not 0.0.0.0.
    web = lines["web"].replace("--bind 0.0.0.0:", "--bind 127.0.0.1:").replace("$PORT", "{port}")
    if "--bind 127.0.0.1:{port}" not in web:
        raise BenchError(f"the Procfile's web line has no --bind 0.0.0.0:$PORT to move: {web}")
    server = servers.start(QUARTAPP_PG, ["bash", "-c", web], env, logs)
    try:
        password = servers.create_user(env, servers.BENCH_USER)
    except BaseException:
        servers.stop_all([server])
        raise
    return server, (servers.BENCH_USER, password)


def run(command: list[str], env: dict[str, str], what: str) -> None:
    done = subprocess.run(
        command,
        cwd=servers.ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=servers.START_TIMEOUT,
        check=False,
    )
    if done.returncode != 0:
        raise BenchError(f"{what} failed:\n{done.stderr.strip()}")
