"""The web line's parent replaces a worker that dies (``quartapp.supervisor``).

Real servers: the Procfile's web line with two hypercorn workers, a worker killed with
SIGKILL (what the OOM killer sends) while requests flow, and workers that cannot start.
"""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.app.test_server import LOCAL_HOSTS
from tests.support.server import (
    HYPERCORN_CONFIG,
    START_TIMEOUT,
    Launcher,
    Server,
    database_url,
    development_env,
    free_port,
    server_env,
)

pytestmark = pytest.mark.server

# How soon a killed worker must be back: its replacement builds the app (about a
# second here) after the supervisor's first backoff (half a second).
REPLACED_WITHIN = 15.0
# Requests that may fail when a worker is killed: the ones it had accepted and not yet
# answered. With one client sending one request at a time, that is one; a second allows
# for a connection the kernel handed it just before the kill.
IN_FLIGHT = 2
# Requests kept flowing once two workers are back, to see the server still answers.
AFTER_REPLACEMENT = 20


def processes() -> dict[int, tuple[int, str]]:
    """Every process on the machine: its parent's pid and its command line."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue  # it ended while we looked
        # The second field, the name, is in parentheses and may hold spaces.
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        found[int(entry.name)] = (parent, command)
    return found


def supervisor_pid(server: Server) -> int:
    """The ``quartapp.serve`` process: the web line's ``bash`` may have exec'd into it."""
    table = processes()
    tree = {server.process.pid}
    while True:
        grown = tree | {pid for pid, (parent, _) in table.items() if parent in tree}
        if grown == tree:
            break
        tree = grown
    (pid,) = [pid for pid in tree if "quartapp.serve" in table.get(pid, (0, ""))[1]]
    return pid


def worker_pids(parent: int) -> set[int]:
    """The hypercorn workers ``parent`` runs (not multiprocessing's resource tracker)."""
    return {
        pid
        for pid, (ppid, command) in processes().items()
        if ppid == parent and "spawn_main" in command
    }


def wait_for_workers(parent: int, count: int, timeout: float) -> set[int]:
    """The workers once there are ``count`` of them; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        pids = worker_pids(parent)
        if len(pids) == count:
            return pids
        if time.monotonic() > deadline:
            pytest.fail(f"{len(pids)} workers, not {count}, after {timeout}s")
        time.sleep(0.05)


@dataclass
class Traffic:
    """One client sending ``GET /`` on a fresh connection, again and again, in a thread."""

    port: int
    results: list[tuple[float, bool]] = field(default_factory=list)
    running: bool = True

    def run(self) -> None:
        while self.running:
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
            try:
                connection.request("GET", "/")
                ok = connection.getresponse().status == 200
            except OSError:
                ok = False
            finally:
                connection.close()
            self.results.append((time.monotonic(), ok))

    def after(self, moment: float) -> list[bool]:
        return [ok for at, ok in list(self.results) if at > moment]


def web_env(directory: Path) -> dict[str, str]:
    """Production settings on ``directory``'s database, with metrics on."""
    return server_env(
        directory / "instance",
        QUARTAPP_TRUSTED_HOSTS=LOCAL_HOSTS,
        SECRET_KEY="s" * 43,
        DATABASE_URL=database_url(directory),
        # Metrics on, in a folder the tests can look into (serve makes one per run in it).
        QUARTAPP_METRICS_TOKEN="m" * 32,
        PROMETHEUS_MULTIPROC_DIR=str(metrics_parent(directory)),
    )


@pytest.fixture
def web(launch: Launcher, tmp_path: Path, sqlite_template: Path) -> Server:
    """The Procfile's web line with two workers, in production, on a migrated database.

    Each test stops or kills its server, so each has its own, on its own copy of the
    suite's migrated template (what the release step leaves: test_server.py runs that).
    """
    shutil.copyfile(sqlite_template, tmp_path / "quartapp.db")
    return launch.web(web_env(tmp_path), workers=2)


def metrics_parent(tmp_path: Path) -> Path:
    """Where the web line makes its per-run metrics folder."""
    folder = tmp_path / "metrics"
    folder.mkdir(exist_ok=True)
    return folder


def live_gauges(tmp_path: Path, pid: int) -> list[Path]:
    """The worker's live gauge files (its process figures), in the run's folder."""
    return list(metrics_parent(tmp_path).glob(f"*/gauge_live*_{pid}.db"))


def test_a_worker_killed_while_requests_flow_is_replaced_and_the_server_keeps_answering(
    web: Server, tmp_path: Path
) -> None:
    parent = supervisor_pid(web)
    first, second = sorted(wait_for_workers(parent, 2, START_TIMEOUT))
    deadline = time.monotonic() + START_TIMEOUT
    while not live_gauges(tmp_path, first) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert live_gauges(tmp_path, first), "the worker writes its process figures"
    traffic = Traffic(web.port)
    client = threading.Thread(target=traffic.run)
    client.start()
    try:
        while len(traffic.results) < 20:
            time.sleep(0.01)

        killed_at = time.monotonic()
        os.kill(first, signal.SIGKILL)
        workers = wait_for_workers(parent, 2, REPLACED_WITHIN) - {second}
        replaced_at = time.monotonic()
        while len(traffic.after(replaced_at)) < AFTER_REPLACEMENT:
            time.sleep(0.01)
    finally:
        traffic.running = False
        client.join()

    assert len(workers) == 1  # a new worker, beside the one that lived
    assert first not in workers
    assert second in worker_pids(parent)
    answered = traffic.after(killed_at)
    assert answered.count(False) <= IN_FLIGHT, answered
    assert all(answered[-AFTER_REPLACEMENT:])
    assert f"quartapp: worker {first} was killed by SIGKILL" in web.stderr
    # Its process figures went with it: no series for a pid that is gone.
    assert live_gauges(tmp_path, first) == []
    assert live_gauges(tmp_path, second)


def test_sigterm_to_the_parent_stops_every_worker_gracefully_with_status_0(web: Server) -> None:
    parent = supervisor_pid(web)
    workers = wait_for_workers(parent, 2, START_TIMEOUT)
    # A request in flight when the signal comes: a login form whose body is half sent.
    # (A connection still sending its head is idle to hypercorn, and closed at once.)
    body = b"username=admin&password=not-the-password"
    in_flight = socket.create_connection(("127.0.0.1", web.port), timeout=START_TIMEOUT)
    in_flight.sendall(
        b"POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body[:10])
    )
    time.sleep(0.5)  # the request reaches the app, which waits for the rest

    os.kill(parent, signal.SIGTERM)
    time.sleep(0.5)  # the shutdown event is polled every 0.1 s; let it reach the workers
    in_flight.sendall(body[10:])
    answer = b""
    while chunk := in_flight.recv(65536):
        answer += chunk
    in_flight.close()

    # Answered in full (the form refused: it carries no CSRF token), not cut off.
    assert answer.startswith(b"HTTP/1.1 400"), answer[:200]
    assert web.wait_exit(START_TIMEOUT) == 0
    assert not workers & set(processes())
    # hypercorn's graceful shutdown ran in each worker: the app's shutdown logged nothing
    # of a crash, and no worker was killed for outstaying the graceful timeout.
    assert "did not stop in time" not in web.stderr
    assert "Traceback" not in web.stderr


def test_workers_stop_when_their_parent_is_killed_outright(web: Server) -> None:
    parent = supervisor_pid(web)
    workers = wait_for_workers(parent, 2, START_TIMEOUT)

    os.kill(parent, signal.SIGKILL)

    # No one would replace them: they see the parent's end of the pipe close and stop.
    deadline = time.monotonic() + START_TIMEOUT
    while workers & set(processes()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not workers & set(processes())


# ``python -m quartapp.serve`` with the supervisor's first backoff cut to a tenth: the
# waits between failed starts (0.5, 1, 2, 4 s as shipped) are not what the test checks,
# the count of failed starts and the line that ends the server are.
SERVE_WITH_SHORT_BACKOFF = (
    "import sys; from quartapp import serve, supervisor; "
    "supervisor.FIRST_BACKOFF /= 10; sys.exit(serve.main(sys.argv[1:]))"
)


def test_workers_that_keep_dying_at_start_end_the_server_with_one_line(
    launch: Launcher, tmp_path: Path
) -> None:
    port = free_port()
    # A name the app module does not have: every worker fails as it loads the app.
    command = [
        *("python", "-c", SERVE_WITH_SHORT_BACKOFF, "--config", HYPERCORN_CONFIG),
        *("--bind", f"127.0.0.1:{port}", "--workers", "2", "quartapp:no_such_app"),
    ]
    server = launch.start(command, development_env(tmp_path), port)

    status = server.wait_exit(START_TIMEOUT)

    assert status == 1
    lines = [line for line in server.stderr.splitlines() if line.startswith("quartapp: ")]
    assert lines[-1].startswith("quartapp: workers keep dying at start (5 in a row")
    assert lines[-1].endswith("exited with status 1); stopping")
    assert len(lines) == 5  # one line for each worker that died, the last one saying why
    assert server.healthz_status() is None
