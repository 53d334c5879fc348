"""A real hypercorn for the server tests: start it on a free port, reach it, stop it.

``Launcher`` (the ``launch`` fixture, or one a module keeps for a shared server) starts
the Procfile's web line or hypercorn on a free loopback port, waits until it serves and
stops everything it started when its block ends.

The server runs in its own process group, so stopping it also stops hypercorn's
workers and, for the Procfile commands, the ``bash`` that runs them. Its output goes to
files rather than pipes, so a chatty access log can never block it.

``RawConnection`` talks to it over a bare socket, for requests that an HTTP client
library would tidy up (bad framing, huge or forged headers, bodies that stall).
"""

from __future__ import annotations

import http.client
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from email.message import Message
from http.cookiejar import CookieJar
from pathlib import Path
from typing import Any

import pytest

# Re-exported: the tests take their ports from here, as before.
from tests.support.ports import free_port as free_port

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
REQUEST_TIMEOUT = 10.0
# Settings from the developer's shell or a PaaS that must not reach the server under test.
INHERITED = ("SECRET_KEY", "DATABASE_URL", "PORT", "WEB_CONCURRENCY")
# The hidden CSRF input of a form, whatever the order of its attributes.
CSRF_INPUT = re.compile(r'<input[^>]*\bname="csrf_token"[^>]*>')
INPUT_VALUE = re.compile(r'\bvalue="([^"]+)"')
# The settings file `make run` and the Procfile serve with.
HYPERCORN_CONFIG = "hypercorn.toml"


# The line shape Heroku (and foreman, honcho) read: "<process type>: <command>".
PROCFILE_LINE = re.compile(r"^([A-Za-z0-9_-]+):\s*(.+)$")


def procfile() -> dict[str, str]:
    """The Procfile's commands by process type."""
    entries = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        match = PROCFILE_LINE.match(line)
        if match:
            entries[match.group(1)] = match.group(2)
    return entries


def procfile_web_on_loopback() -> list[str]:
    """The Procfile's web command, listening on loopback: tests open no other interface."""
    return ["bash", "-c", procfile()["web"].replace("--bind 0.0.0.0:", "--bind 127.0.0.1:")]


# A test standing in for a router that forwards plain HTTP and forges X-Forwarded-For:
# such a proxy sends no X-Forwarded-Proto, which the docs say needs the HTTPS redirect
# off (otherwise every request, reported as plain HTTP, gets a 308).
PLAIN_HTTP_PROXY = {"QUARTAPP_TRUSTED_PROXY_HOPS": "1", "QUARTAPP_HTTPS_REDIRECT": "false"}


def server_env(instance: Path, **settings: str) -> dict[str, str]:
    """The environment for a server: this one minus app settings, plus ``settings``.

    The virtualenv's ``bin`` goes first on PATH so that the Procfile's bare ``hypercorn``
    and ``quart`` are this project's. Hashing is the cheapest argon2 the app accepts.
    """
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("QUARTAPP_") and name not in INHERITED
    }
    env["PATH"] = os.pathsep.join([str(BIN), env.get("PATH", "")])
    env["QUARTAPP_INSTANCE_PATH"] = str(instance)
    env["QUARTAPP_ARGON2_MEMORY_COST"] = "19456"
    env["QUARTAPP_ARGON2_TIME_COST"] = "2"
    env.update(settings)
    return env


def database_url(directory: Path) -> str:
    return f"sqlite:///{directory / 'quartapp.db'}"


def development_env(directory: Path, **settings: str) -> dict[str, str]:
    """A development server's environment, its instance folder and database in ``directory``."""
    return server_env(
        directory / "instance",
        QUARTAPP_ENV="development",
        DATABASE_URL=database_url(directory),
        **settings,
    )


def hypercorn_command(port: int, *options: str) -> list[str]:
    """``hypercorn --config hypercorn.toml quartapp:app`` on 127.0.0.1:``port``.

    That is how ``make run`` and the Procfile serve; ``--bind`` overrides the file.
    """
    return [
        sys.executable,
        "-m",
        "hypercorn",
        "--config",
        HYPERCORN_CONFIG,
        "--bind",
        f"127.0.0.1:{port}",
        *options,
        "quartapp:app",
    ]


@dataclass
class Server:
    """A started server process and where to reach it."""

    process: subprocess.Popen[bytes]
    port: int
    env: Mapping[str, str]
    logs: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def stdout(self) -> str:
        return (self.logs / "stdout.log").read_text(errors="replace")

    @property
    def stderr(self) -> str:
        return (self.logs / "stderr.log").read_text(errors="replace")

    def access_log(self) -> list[dict[str, Any]]:
        """The access log so far: stdout holds nothing else, one JSON object a line.

        A line still being written (no newline yet) is left for the next call.
        """
        lines = self.stdout.split("\n")[:-1]
        return [json.loads(line) for line in lines]

    def access_entries(
        self, count: int = 1, timeout: float = 5.0, **fields: object
    ) -> list[dict[str, Any]]:
        """The access log entries whose ``fields`` have these values, once there are ``count``.

        Lines are written once the response is sent, so they may lag it; after
        ``timeout`` the entries found so far are returned.
        """
        deadline = time.monotonic() + timeout
        while True:
            found = [
                entry
                for entry in self.access_log()
                if all(entry.get(name) == value for name, value in fields.items())
            ]
            if len(found) >= count or time.monotonic() > deadline:
                return found
            time.sleep(0.05)

    def wait_healthy(self, timeout: float = START_TIMEOUT) -> None:
        """Return once ``GET /healthz`` answers 200; fail with the server's stderr if not."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            code = self.process.poll()
            if code is not None:
                pytest.fail(f"the server exited with {code} before serving:\n{self.stderr}")
            if self.healthz_status() == 200:
                return
            time.sleep(0.1)
        pytest.fail(f"the server did not answer /healthz within {timeout}s:\n{self.stderr}")

    def wait_workers(self, count: int, timeout: float = START_TIMEOUT) -> None:
        """Return once ``count`` hypercorn workers have said they are serving."""
        deadline = time.monotonic() + timeout
        while self.stderr.count("Running on") < count:
            if self.process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"{count} workers did not start:\n{self.stderr}")
            time.sleep(0.1)

    def wait_serving(self, workers: int = 1) -> None:
        """Return once ``/healthz`` answers and ``workers`` workers have said they serve."""
        self.wait_healthy()
        self.wait_workers(workers)

    def healthz_status(self) -> int | None:
        """The status of ``GET /healthz``, or None when the server cannot be reached."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=1)
        try:
            connection.request("GET", "/healthz")
            return connection.getresponse().status
        except OSError:
            return None
        finally:
            connection.close()

    def wait_exit(self, timeout: float) -> int:
        """The exit status, once the server has stopped by itself; fail if it doesn't."""
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the server was still running after {timeout}s:\n{self.stderr}")

    def stop(self) -> None:
        """SIGTERM the whole process group, then SIGKILL it if it is still there."""
        # Signal only while the leader is unreaped: then its pid is still our group's id.
        if self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def init_db(env: Mapping[str, str]) -> None:
    """Create the tables before serving, as a PaaS release phase does.

    Otherwise every worker creates them at startup, and on a fresh SQLite file several
    workers can collide doing so.
    """
    result = subprocess.run(
        [sys.executable, "-m", "quart", "--app", "quartapp", "init-db"],
        cwd=ROOT,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, result.stderr


@contextmanager
def running(
    command: Sequence[str], env: Mapping[str, str], port: int, logs: Path
) -> Iterator[Server]:
    """Start ``command`` from the repository root and always stop it afterwards."""
    logs.mkdir(parents=True, exist_ok=True)
    with (logs / "stdout.log").open("wb") as out, (logs / "stderr.log").open("wb") as err:
        process = subprocess.Popen(
            command, cwd=ROOT, env=dict(env), stdout=out, stderr=err, start_new_session=True
        )
    server = Server(process, port, env, logs)
    try:
        yield server
    finally:
        server.stop()


class Launcher:
    """Starts servers, each on its own logs folder, and stops them all when its block ends.

    ``web`` and ``hypercorn`` pick a free loopback port and, unless told not to, wait
    until the server answers ``/healthz`` with all its workers up; ``start`` runs any
    command on a given port and waits for nothing.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.starts = 0
        # Anything else to close with the servers (a Prometheus, say) may go on it too.
        self.stack = ExitStack()

    def __enter__(self) -> Launcher:
        return self

    def __exit__(self, *_: object) -> None:
        self.stack.close()

    def start(self, command: Sequence[str], env: Mapping[str, str], port: int) -> Server:
        """Run ``command`` from the repository root; it is stopped with the launcher."""
        self.starts += 1
        # A name of its own: a test may keep other servers' logs in the same folder.
        logs = self.directory / f"launched-{self.starts}"
        return self.stack.enter_context(running(command, env, port, logs))

    def web(self, env: Mapping[str, str], workers: int = 1, *, wait: bool = True) -> Server:
        """The Procfile's web line with ``workers`` workers (``PORT`` and
        ``WEB_CONCURRENCY`` set here), on loopback."""
        port = free_port()
        settings = {**env, "PORT": str(port), "WEB_CONCURRENCY": str(workers)}
        server = self.start(procfile_web_on_loopback(), settings, port)
        if wait:
            server.wait_serving(workers)
        return server

    def hypercorn(self, env: Mapping[str, str], *options: str, wait: bool = True) -> Server:
        """``hypercorn --config hypercorn.toml quartapp:app`` with ``options``, on loopback."""
        port = free_port()
        server = self.start(hypercorn_command(port, *options), env, port)
        if wait:
            server.wait_healthy()
        return server


@pytest.fixture
def launch(tmp_path: Path) -> Iterator[Launcher]:
    """A launcher for one test: every server it started is stopped when the test ends."""
    with Launcher(tmp_path) as launcher:
        yield launcher


@dataclass
class Page:
    """One response as a browser got it, before following any redirect."""

    status: int
    headers: Message
    text: str

    @property
    def location(self) -> str | None:
        return self.headers.get("Location")


class _KeepRedirects(urllib.request.HTTPRedirectHandler):
    """Hand 3xx responses back instead of following them, so tests see ``Location``."""

    def redirect_request(self, *_: object, **__: object) -> None:
        return None


class Browser:
    """A cookie-keeping HTTP client for a server, on the standard library."""

    def __init__(self, base_url: str, cookies: CookieJar | None = None) -> None:
        self.base_url = base_url
        # Sharing a jar makes two servers on one host one browser's view of one site.
        self.cookies = cookies if cookies is not None else CookieJar()
        self._opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.cookies), _KeepRedirects()
        )

    def get(self, path: str, headers: Mapping[str, str] | None = None) -> Page:
        return self._open("GET", path, None, headers)

    def post(
        self, path: str, form: Mapping[str, str], headers: Mapping[str, str] | None = None
    ) -> Page:
        return self._open("POST", path, urllib.parse.urlencode(form).encode(), headers)

    def post_bytes(self, path: str, data: bytes, headers: Mapping[str, str]) -> Page:
        """POST ``data`` as it is, as a script's ``fetch`` does (a JSON body, say)."""
        return self._open("POST", path, data, headers)

    def csrf_token(self, path: str) -> str:
        """The CSRF token of the form on ``path``, read from the page like a browser."""
        page = self.get(path)
        field = CSRF_INPUT.search(page.text)
        assert field, f"no CSRF field on {path} ({page.status}):\n{page.text}"
        value = INPUT_VALUE.search(field.group(0))
        assert value, f"empty CSRF field on {path}"
        return value.group(1)

    def _open(
        self, method: str, path: str, data: bytes | None, headers: Mapping[str, str] | None
    ) -> Page:
        # The URL is always the local test server's plain http://, never a file: URL.
        request = urllib.request.Request(  # noqa: S310
            self.base_url + path, data=data, headers=dict(headers or {}), method=method
        )
        try:
            with self._opener.open(request, timeout=REQUEST_TIMEOUT) as response:
                return Page(response.status, response.headers, response.read().decode())
        except urllib.error.HTTPError as error:
            with error:
                return Page(error.code, error.headers, error.read().decode())


@dataclass
class RawResponse:
    """One response as it came over the wire."""

    status: int
    headers: Message
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode(errors="replace")


class _Unclosable(io.BytesIO):
    """http.client closes its file after each body; the next response is in it too."""

    def close(self) -> None:
        pass


class _Replay:
    """Just enough of a socket for ``http.client`` to parse bytes already received."""

    def __init__(self, data: bytes) -> None:
        self.file = _Unclosable(data)

    def makefile(self, *_: object) -> io.BytesIO:
        return self.file


def parse_responses(data: bytes) -> list[RawResponse]:
    """Every response in ``data``, in order; interim (1xx) responses are skipped.

    A response cut short raises ``http.client.HTTPException``, so a test that expects
    a complete response fails on a truncated one.
    """
    replay = _Replay(data)
    responses = []
    while replay.file.tell() < len(data):
        # HTTPResponse is typed to take a socket; it only calls makefile(), which _Replay has.
        response = http.client.HTTPResponse(replay)  # type: ignore[arg-type]
        response.begin()
        responses.append(RawResponse(response.status, response.headers, response.read()))
    return responses


@dataclass
class Received:
    """What the server sent on one connection, and how the connection ended.

    ``ending`` is "closed" (the server closed it), "reset", or "open" when it was still
    open when the time ran out.
    """

    data: bytes
    ending: str
    seconds: float

    @property
    def responses(self) -> list[RawResponse]:
        return parse_responses(self.data)


class RawConnection:
    """A bare TCP connection to a server on 127.0.0.1, for hand-written requests."""

    def __init__(self, port: int, timeout: float = REQUEST_TIMEOUT) -> None:
        self.timeout = timeout
        self.socket = socket.create_connection(("127.0.0.1", port), timeout=timeout)

    def __enter__(self) -> RawConnection:
        return self

    def __exit__(self, *_: object) -> None:
        self.socket.close()

    def send(self, data: bytes) -> None:
        self.socket.sendall(data)

    def interim_response(self) -> bytes:
        """Read one interim response head, such as ``100 Continue``, and nothing more."""
        head = b""
        while not head.endswith(b"\r\n\r\n"):
            byte = self.socket.recv(1)
            if not byte:
                pytest.fail(f"the connection closed before a full interim response: {head!r}")
            head += byte
        return head

    def receive(self, timeout: float | None = None) -> Received:
        """Everything the server sends until it ends the connection or ``timeout`` passes.

        Requests that should be the last on the connection say ``Connection: close``,
        so a well-behaved server ends it and this returns without waiting out the time.
        """
        started = time.monotonic()
        deadline = started + (self.timeout if timeout is None else timeout)
        data = b""
        ending = "open"
        while (left := deadline - time.monotonic()) > 0:
            self.socket.settimeout(left)
            try:
                chunk = self.socket.recv(65536)
            except TimeoutError:
                break
            except ConnectionResetError:
                ending = "reset"
                break
            if not chunk:
                ending = "closed"
                break
            data += chunk
        return Received(data, ending, time.monotonic() - started)


def exchange(port: int, request: bytes, timeout: float = REQUEST_TIMEOUT) -> Received:
    """Send ``request`` as it is on a new connection and collect the answer."""
    with RawConnection(port, timeout) as connection:
        connection.send(request)
        return connection.receive()


def raw_request(
    method: str,
    target: str,
    host: str,
    headers: Sequence[tuple[str, str]] = (),
    body: bytes = b"",
) -> bytes:
    """A request written out byte for byte: no header is added, fixed or reordered.

    Names and values go in as given, so a test can write ``"Transfer-Encoding "``.
    """
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}"]
    lines += [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def create_user(env: Mapping[str, str], name: str, password: str) -> None:
    """Create an account with the CLI, as an operator would (``--password-stdin``)."""
    command = ["users", "create", name, "--password-stdin"]
    result = subprocess.run(
        [sys.executable, "-m", "quart", "--app", "quartapp", *command],
        cwd=ROOT,
        env=dict(env),
        input=password + "\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
