"""The servers under test: how each is started, stopped, logged in to and weighed.

Each server runs from the repository root in its own process group, on a free port of
127.0.0.1, with its output in files (an access log in a pipe could block it).
"""

from __future__ import annotations

import http.client
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
START_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0
REQUEST_TIMEOUT = 30.0
# Settings from the developer's shell that must not reach a server under test.
INHERITED = (
    "SECRET_KEY",
    "DATABASE_URL",
    "PORT",
    "WEB_CONCURRENCY",
    "BENCH_DATABASE",
    "BENCH_DATABASE_URL",
)
CSRF_INPUT = re.compile(r'<input[^>]*\bname="csrf_token"[^>]*>')
INPUT_VALUE = re.compile(r'\bvalue="([^"]+)"')
BENCH_USER = "bench"


class BenchError(RuntimeError):
    """A server would not start, or an app did not behave as the bench expects."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def clean_env(**settings: str) -> dict[str, str]:
    """This environment minus app settings, with the venv first on PATH, plus ``settings``."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("QUARTAPP_") and name not in INHERITED
    }
    env["PATH"] = os.pathsep.join([str(BIN), env.get("PATH", "")])
    env.update(settings)
    return env


@dataclass
class Response:
    """One response, redirects not followed."""

    status: int
    headers: list[tuple[str, str]]
    text: str

    @property
    def location(self) -> str:
        return next((v for k, v in self.headers if k.lower() == "location"), "")

    def cookies(self) -> dict[str, str]:
        """The cookies this response sets, by name."""
        jar: SimpleCookie = SimpleCookie()
        for name, value in self.headers:
            if name.lower() == "set-cookie":
                jar.load(value)
        return {name: morsel.value for name, morsel in jar.items()}


@dataclass
class Server:
    """A started server process and the way to reach it."""

    name: str
    process: subprocess.Popen[bytes]
    port: int
    logs: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def request(
        self,
        method: str,
        path: str,
        cookies: Mapping[str, str] | None = None,
        form: Mapping[str, str] | None = None,
    ) -> Response:
        """Send one request as a browser would, with ``cookies`` and an urlencoded ``form``."""
        headers = {"Host": f"127.0.0.1:{self.port}"}
        if cookies:
            headers["Cookie"] = cookie_header(cookies)
        body = None
        if form is not None:
            body = urllib.parse.urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=REQUEST_TIMEOUT)
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            return Response(
                response.status, response.getheaders(), response.read().decode(errors="replace")
            )
        finally:
            connection.close()

    def wait_ready(self, path: str) -> None:
        """Return once ``path`` answers 200; fail with the server's log if it never does."""
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BenchError(f"{self.name} exited before serving:\n{self.log_tail()}")
            try:
                if self.request("GET", path).status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise BenchError(f"{self.name} did not answer {path} in time:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        text = (self.logs / f"{self.name}.err").read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def pids(self) -> list[int]:
        """The server process and all its descendants (hypercorn's or gunicorn's workers)."""
        return descendants(self.process.pid)

    def rss_bytes(self) -> int:
        """The resident memory of the whole process tree, summed."""
        return sum(rss_of(pid) for pid in self.pids())

    def stop(self) -> None:
        """SIGTERM the process group, then SIGKILL it if it lingers."""
        signal_group(self.process, signal.SIGTERM)

    def wait_stopped(self) -> None:
        try:
            self.process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            signal_group(self.process, signal.SIGKILL)
            self.process.wait()


def signal_group(process: subprocess.Popen[bytes], signum: int) -> None:
    # Only while the leader is unreaped is its pid still our group's id.
    if process.poll() is None:
        os.killpg(process.pid, signum)


def start(name: str, command: Sequence[str], env: Mapping[str, str], logs: Path) -> Server:
    """Start ``command`` from the repository root; the caller waits and stops it."""
    port = free_port()
    command = [part.replace("{port}", str(port)) for part in command]
    with (logs / f"{name}.out").open("wb") as out, (logs / f"{name}.err").open("wb") as err:
        process = subprocess.Popen(
            command, cwd=ROOT, env=dict(env), stdout=out, stderr=err, start_new_session=True
        )
    return Server(name, process, port, logs)


def stop_all(servers: Iterable[Server]) -> None:
    """Stop every server, signalling them all before waiting for any."""
    servers = list(servers)
    for server in servers:
        server.stop()
    for server in servers:
        server.wait_stopped()


def create_user(env: Mapping[str, str], username: str) -> str:
    """Make a quartapp user with the project's own CLI, in ``env``; its new password."""
    password = secrets.token_urlsafe(24)
    command = ["users", "create", username, "--password-stdin"]
    created = subprocess.run(
        [sys.executable, "-m", "quart", "--app", "quartapp", *command],
        cwd=ROOT,
        env=dict(env),
        input=password + "\n",
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT,
        check=False,
    )
    if created.returncode != 0:
        raise BenchError(f"creating the bench user failed:\n{created.stderr.strip()}")
    return password


def cookie_header(cookies: Mapping[str, str]) -> str:
    """The ``Cookie`` header for ``cookies``."""
    return "; ".join(f"{name}={value}" for name, value in cookies.items())


def csrf_token(html: str) -> str | None:
    """The value of a page's hidden csrf_token input, read like a browser would."""
    field_ = CSRF_INPUT.search(html)
    value = INPUT_VALUE.search(field_.group(0)) if field_ else None
    return value.group(1) if value else None


@dataclass
class PreLogin:
    """The login page's cookie and the form to post with it."""

    cookies: dict[str, str]
    form: dict[str, str] = field(default_factory=dict)


def pre_login(server: Server, username: str, password: str) -> PreLogin:
    """GET /login and fill its form: the cookie it set, the CSRF token if the page has one."""
    page = server.request("GET", "/login")
    if page.status != 200:
        raise BenchError(f"{server.name}: GET /login answered {page.status}")
    form = {"username": username, "password": password}
    token = csrf_token(page.text)
    if token is not None:
        form["csrf_token"] = token
    return PreLogin(page.cookies(), form)


# A login right after a flood may find the hashing line still full: quartapp then
# answers 503 with Retry-After, as it should, and the bench waits as a client would.
BUSY_RETRIES = 10


def post_login(server: Server, attempt: PreLogin, expect: str = "/hello") -> dict[str, str]:
    """POST the login form; the cookies of the logged-in session."""
    for _ in range(BUSY_RETRIES):
        response = server.request("POST", "/login", attempt.cookies, attempt.form)
        retry = next((v for k, v in response.headers if k.lower() == "retry-after"), "")
        if response.status != 503 or not retry.isdigit():
            break
        time.sleep(int(retry))
    if response.status not in (302, 303) or not response.location.endswith(expect):
        raise BenchError(
            f"{server.name}: logging in answered {response.status} "
            f"(Location {response.location!r}) instead of a redirect to {expect}"
        )
    return {**attempt.cookies, **response.cookies()}


def log_in(server: Server, username: str, password: str) -> dict[str, str]:
    """Log in through the app's own form and check that /hello then greets the user.

    The cookies returned are those a browser holds after that first page: it showed
    the login's flashed message, and a browser would not send that message back again
    (with the login's own cookie, every request of the run would show and remove it,
    and sign and send a new cookie).
    """
    cookies = post_login(server, pre_login(server, username, password))
    page = server.request("GET", "/hello", cookies)
    if page.status != 200 or "Hello" not in page.text:
        raise BenchError(f"{server.name}: /hello answered {page.status} after logging in")
    return {**cookies, **page.cookies()}


def descendants(root: int) -> list[int]:
    """``root`` and every process below it, from the parent ids in /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name, in parentheses, may hold spaces; the parent id follows it.
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    found, queue = [], [root]
    while queue:
        pid = queue.pop()
        found.append(pid)
        queue.extend(children.get(pid, []))
    return found


def rss_of(pid: int) -> int:
    """A process's resident set size in bytes; 0 once it has gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0
