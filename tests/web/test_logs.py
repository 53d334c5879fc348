"""The logs: one JSON access line per request, and app log lines no request can forge.

In-process tests read the access log from stdout with ``capsys``. The real-server tests
send control characters in the path and in headers to hypercorn and read back what it
wrote: every line of stdout must be one JSON object, one per request, with the path as
the app saw it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlencode

import pytest
from werkzeug.datastructures import Headers

from quartapp import create_app
from quartapp.settings import ConfigError
from quartapp.web.logs import QUART_LOG_FORMAT, SafeFormatter
from tests.conftest import SQLITE_ONLY, AuthActions, aquery, make_settings, settings_at_head
from tests.support.server import (
    Browser,
    Server,
    development_env,
    exchange,
    free_port,
    hypercorn_command,
    raw_request,
    running,
)

if TYPE_CHECKING:
    # Only for annotations: a Test* class at module level would be collected by pytest.
    from quart.typing import TestClientProtocol

CLOSE = ("Connection", "close")
GENERATED_ID = re.compile(r"[0-9a-f]{32}")
SOCKET_PEER = ("192.0.2.1", 50000)
# What a forged audit entry looks like; no line of any log may start with it.
FORGED = '[2026-01-01 00:00:00,000] INFO in audit: {"event": "login_ok", "user": "admin"}'
FIELDS = {
    "time",
    "pid",
    "request_id",
    "addr",
    "user_id",
    "method",
    "path",
    "query",
    "status",
    "bytes",
    "duration_ms",
    "agent",
}


def access_log(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    """The access log lines written since the last call, each parsed as JSON."""
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


@SQLITE_ONLY
async def test_each_request_is_one_line_with_its_fields(
    auth: AuthActions, settings: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    await auth.login()
    capsys.readouterr()

    response = await auth.client.get("/hello?x=1", headers={"User-Agent": "tester/1.0"})

    (entry,) = access_log(capsys)
    [(alice,)] = await aquery(settings, "SELECT id FROM users WHERE username = 'alice'")
    assert set(entry) == FIELDS
    assert entry["request_id"] == response.headers["X-Request-ID"]
    assert GENERATED_ID.fullmatch(entry["request_id"])
    assert (entry["method"], entry["path"], entry["query"]) == ("GET", "/hello", "x=1")
    assert (entry["status"], entry["user_id"], entry["agent"]) == (200, alice, "tester/1.0")
    assert entry["bytes"] == len(await response.get_data())
    assert entry["pid"] == os.getpid()
    assert isinstance(entry["duration_ms"], float)
    assert entry["duration_ms"] >= 0


@SQLITE_ONLY
async def test_anonymous_request_has_no_user(
    client: TestClientProtocol, capsys: pytest.CaptureFixture[str]
) -> None:
    await client.get("/")

    (entry,) = access_log(capsys)
    assert (entry["path"], entry["status"], entry["user_id"]) == ("/", 200, None)


@pytest.fixture
async def behind_proxy(tmp_path: Path, database: str) -> AsyncIterator[TestClientProtocol]:
    """A client of an app behind one trusted proxy, whose X-Request-ID it takes."""
    app = create_app(settings_at_head(tmp_path, database, TRUSTED_PROXY_HOPS=1))
    async with app.test_app():
        yield app.test_client()


@SQLITE_ONLY
@pytest.mark.parametrize(
    "request_id",
    [
        "0f8fad5b-d9cb-469f-a165-70867728950e",  # a UUID
        "f9ed4675f1c53513c61a3b3b4e25b4c0",  # Heroku's router's own
        "Heroku+/id=-0123456789",  # what Heroku passes on from a client: 20-200 of these
        "x" * 200,
    ],
    ids=["uuid", "hex", "heroku-client", "200-chars"],
)
async def test_a_request_id_of_the_documented_shape_from_a_trusted_proxy_is_kept(
    behind_proxy: TestClientProtocol, capsys: pytest.CaptureFixture[str], request_id: str
) -> None:
    capsys.readouterr()

    response = await behind_proxy.get("/", headers={"X-Request-ID": request_id})

    (entry,) = access_log(capsys)
    assert response.headers["X-Request-ID"] == entry["request_id"] == request_id


@SQLITE_ONLY
async def test_without_a_trusted_proxy_the_clients_request_id_is_never_taken(
    client: TestClientProtocol, capsys: pytest.CaptureFixture[str]
) -> None:
    sent = "0f8fad5b-d9cb-469f-a165-70867728950e"

    first = await client.get("/", headers={"X-Request-ID": sent})
    second = await client.get("/", headers={"X-Request-ID": sent})

    ids = [first.headers["X-Request-ID"], second.headers["X-Request-ID"]]
    assert [entry["request_id"] for entry in access_log(capsys)] == ids
    assert all(GENERATED_ID.fullmatch(request_id) for request_id in ids)
    assert ids[0] != ids[1]


@SQLITE_ONLY
@pytest.mark.parametrize(
    "headers",
    [
        Headers(),
        Headers({"X-Request-ID": ""}),
        Headers({"X-Request-ID": "x" * 201}),
        Headers({"X-Request-ID": "two words"}),
        Headers({"X-Request-ID": "a;b=c"}),
        Headers({"X-Request-ID": "caf\xe9"}),
        Headers({"X-Request-ID": "esc\x1b[31m"}),
        Headers([("X-Request-ID", "first"), ("X-Request-ID", "second")]),
        Headers({"X-Request-ID": "a"}),
        Headers({"X-Request-ID": "x" * 19}),
        Headers({"X-Request-ID": "dots.are.not.allowed.here"}),
        Headers({"X-Request-ID": "colons:are:not:allowed:here"}),
        Headers({"X-Request-ID": "underscores_are_not_allowed"}),
        Headers(
            [
                ("X-Request-ID", "0f8fad5b-d9cb-469f-a165-70867728950e"),
                ("X-Request-ID", "0f8fad5b-d9cb-469f-a165-70867728950e"),
            ]
        ),
    ],
    ids=[
        "none",
        "empty",
        "201-chars",
        "space",
        "semicolon",
        "latin-1",
        "escape",
        "two",
        "one-char",
        "19-chars",
        "dots",
        "colons",
        "underscores",
        "same-twice",
    ],
)
async def test_any_other_request_id_from_a_trusted_proxy_is_replaced_by_a_new_one(
    behind_proxy: TestClientProtocol, capsys: pytest.CaptureFixture[str], headers: Headers
) -> None:
    capsys.readouterr()

    first = await behind_proxy.get("/", headers=headers)
    second = await behind_proxy.get("/", headers=headers)

    entries = access_log(capsys)
    ids = [first.headers["X-Request-ID"], second.headers["X-Request-ID"]]
    assert [entry["request_id"] for entry in entries] == ids
    assert all(GENERATED_ID.fullmatch(request_id) for request_id in ids)
    assert ids[0] != ids[1]


@SQLITE_ONLY
@pytest.mark.parametrize(
    ("hops", "headers", "address"),
    [
        (0, {"X-Forwarded-For": "203.0.113.7"}, SOCKET_PEER[0]),
        (1, {"X-Forwarded-For": "203.0.113.7"}, "203.0.113.7"),
        (1, {"X-Forwarded-For": "203.0.113.7\x1b[2J"}, "203.0.113.7\x1b[2J"),
    ],
    ids=["socket-peer", "proxy", "forged-by-proxy"],
)
async def test_the_address_is_the_one_the_app_sees(
    tmp_path: Path,
    database: str,
    capsys: pytest.CaptureFixture[str],
    hops: int,
    headers: dict[str, str],
    address: str,
) -> None:
    app = create_app(settings_at_head(tmp_path, database, TRUSTED_PROXY_HOPS=hops))
    async with app.test_app():
        capsys.readouterr()
        await app.test_client().get("/", headers=headers, scope_base={"client": SOCKET_PEER})

    (entry,) = access_log(capsys)
    assert entry["addr"] == address


@SQLITE_ONLY
async def test_refused_hosts_and_failing_views_are_logged(
    tmp_path: Path, database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    app = create_app(settings_at_head(tmp_path, database))

    @app.get("/boom")
    async def boom() -> str:
        raise RuntimeError("a bug")

    async with app.test_app():
        capsys.readouterr()
        client = app.test_client()
        await client.get("/", headers={"Host": "evil.example"})
        await client.get("/boom")

    entries = access_log(capsys)
    assert [(entry["path"], entry["status"]) for entry in entries] == [("/", 400), ("/boom", 500)]


@SQLITE_ONLY
async def test_access_log_can_be_turned_off(
    tmp_path: Path, database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    app = create_app(settings_at_head(tmp_path, database, ACCESS_LOG=False))
    async with app.test_app():
        capsys.readouterr()
        response = await app.test_client().get("/")

    assert response.status_code == 200
    assert "X-Request-ID" not in response.headers
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("value", ["no", 1, None])
def test_access_log_setting_must_be_a_boolean(tmp_path: Path, value: object) -> None:
    with pytest.raises(ConfigError, match="ACCESS_LOG must be true or false"):
        create_app(make_settings(tmp_path, ACCESS_LOG=value))


def record(message: str, *args: object, exc_info: Any = None) -> logging.LogRecord:
    return logging.LogRecord(
        "quartapp.errors", logging.ERROR, __file__, 1, message, args, exc_info
    )


@pytest.mark.parametrize(
    ("path", "escaped"),
    [
        ("/x\n" + FORGED, "/x\\x0a" + FORGED),
        ("/x\r" + FORGED, "/x\\x0d" + FORGED),
        ("/x\x00y", "/x\\x00y"),
        ("/x\u2028" + FORGED, "/x\\u2028" + FORGED),
        ("/x\x85y", "/x\\x85y"),
        ("/tab\tstays", "/tab\tstays"),
    ],
    ids=["lf", "cr", "nul", "u2028", "nel", "tab"],
)
def test_app_log_messages_stay_on_one_line(path: str, escaped: str) -> None:
    line = SafeFormatter(QUART_LOG_FORMAT).format(record("unhandled error on GET %s", path))

    assert len(line.splitlines()) == 1
    assert line.endswith(f"ERROR in test_logs: unhandled error on GET {escaped}")


def test_a_traceback_quoting_input_cannot_start_a_log_line() -> None:
    try:
        raise ValueError("bad value\n" + FORGED)
    except ValueError:
        exc_info = sys.exc_info()

    text = SafeFormatter(QUART_LOG_FORMAT).format(record("unhandled error", exc_info=exc_info))

    first, *rest = text.split("\n")
    assert first.endswith("ERROR in test_logs: unhandled error")
    assert rest
    assert all(line.startswith("    ") for line in rest)
    assert FORGED in text  # kept readable, but indented under its entry


# Real server: what hypercorn and the app write for hostile paths and headers.


@pytest.fixture(scope="module")
def log_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A development hypercorn as `make run` starts it, behind one trusted proxy."""
    directory = tmp_path_factory.mktemp("log-server")
    port = free_port()
    env = development_env(directory, QUARTAPP_TRUSTED_PROXY_HOPS="1")
    with running(hypercorn_command(port), env, port, directory / "logs") as server:
        server.wait_healthy()
        yield server


def assert_no_forged_line(server: Server) -> None:
    """Every stdout line is one JSON object, and no line anywhere starts as a forgery."""
    server.access_log()  # raises if a line is not JSON
    for line in (server.stdout + server.stderr).splitlines():
        assert not line.startswith(FORGED[:26]), line


@pytest.mark.server
@pytest.mark.parametrize(
    "target",
    [
        "/x%0d%0a" + FORGED.replace(" ", "%20").replace('"', "%22"),
        "/x%0a%0a%0ay",
        "/nul%00byte",
        "/line%E2%80%A8separator",
        "/next%C2%85line",
        "/escape%1B%5B2J",
        "/login?next=%2F%0a" + FORGED.replace(" ", "%20").replace('"', "%22"),
    ],
    ids=["crlf-forged-entry", "lf", "nul", "u2028", "nel", "terminal-escape", "query"],
)
def test_percent_encoded_controls_in_the_path_give_one_escaped_line(
    log_server: Server, target: str
) -> None:
    request_id = "path-" + hashlib.sha256(target.encode()).hexdigest()[:16]
    request = raw_request("GET", target, "localhost", [("X-Request-ID", request_id), CLOSE])

    (response,) = exchange(log_server.port, request).responses

    assert response.status in (200, 404)
    assert response.headers["X-Request-ID"] == request_id
    (entry,) = log_server.access_entries(request_id=request_id)
    path, _, query = target.partition("?")
    assert entry["path"] == unquote(path)
    assert entry["query"] == query
    assert entry["status"] == response.status
    assert_no_forged_line(log_server)


@pytest.mark.server
@pytest.mark.parametrize("byte", ["\x00", "\r", "\n", "\x1b", "\x7f", "\x85"], ids=repr)
def test_raw_controls_in_the_path_are_refused_by_hypercorn(log_server: Server, byte: str) -> None:
    marker = f"raw{ord(byte)}"
    request = raw_request("GET", f"/{marker}{byte}{FORGED}", "localhost", [CLOSE])

    (response,) = exchange(log_server.port, request).responses

    assert response.status == 400
    # hypercorn answered it without the app: nothing of it reaches any log.
    assert marker not in log_server.stdout + log_server.stderr
    assert_no_forged_line(log_server)


@pytest.mark.server
def test_controls_in_headers_are_escaped_or_refused(log_server: Server) -> None:
    # h11 lets these bytes through in a header value (obs-text and C0 other than
    # whitespace); the User-Agent is logged escaped and the X-Request-ID is replaced.
    # NUL, CR and LF inside a value get hypercorn's 400 before the app sees them.
    agent = "agent\x01\x1b[2J\x7f\x85" + FORGED
    headers = [("User-Agent", agent), ("X-Request-ID", "id\x1b[2J"), CLOSE]

    request = raw_request("GET", "/", "localhost", headers)

    (response,) = exchange(log_server.port, request).responses

    request_id = response.headers["X-Request-ID"]
    assert GENERATED_ID.fullmatch(request_id)
    (entry,) = log_server.access_entries(request_id=request_id)
    assert entry["agent"] == agent
    for refused in ("\x00", "\r", "\n"):
        bad = [("User-Agent", f"agent{refused}" + FORGED), CLOSE]
        request = raw_request("GET", "/", "localhost", bad)
        assert exchange(log_server.port, request).responses[0].status == 400
    assert_no_forged_line(log_server)


@pytest.mark.server
def test_a_forged_proxy_address_stays_inside_the_audit_line(log_server: Server) -> None:
    browser = Browser(log_server.base_url)
    token = browser.csrf_token("/login")
    cookie = "; ".join(f"{c.name}={c.value}" for c in browser.cookies)
    form = urlencode({"username": "nobody", "password": "not the password", "csrf_token": token})
    # ProxyFix takes the last comma-separated entry, so this one has no comma.
    address = "203.0.113.9\x1b[2J\x85\x01" + FORGED.replace(",", ".")
    headers = [
        ("Cookie", cookie),
        ("Content-Type", "application/x-www-form-urlencoded"),
        ("Content-Length", str(len(form))),
        ("X-Forwarded-For", address),
        ("X-Request-ID", "forged-address-0123456789"),
        CLOSE,
    ]
    request = raw_request("POST", "/login", "localhost", headers, form.encode())

    (response,) = exchange(log_server.port, request).responses

    assert response.status == 200
    (entry,) = log_server.access_entries(request_id="forged-address-0123456789")
    assert entry["addr"] == address
    audit = [line for line in log_server.stderr.splitlines() if '"login_failed"' in line]
    events = [json.loads(line.partition("INFO in audit: ")[2]) for line in audit]
    assert address in [event["addr"] for event in events]
    assert_no_forged_line(log_server)
