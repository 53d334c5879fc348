"""The security module: security headers, the host check and proxy handling.

``test_server.py`` shows the proxy setting working behind real hypercorn; the
in-process cases here pin down the details: entries a client typed in front of the
router's own are ignored, and only the ``X-Forwarded-*`` headers count.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from quart import Quart

import quartapp
from quartapp import create_app
from quartapp.web.hosts import KNOWN_HOSTS, HostGuard, RefusedHosts, host_is_trusted
from tests.conftest import AuthActions, body, csrf_token, settings_at_head
from tests.support.server import (
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

SOCKET_PEER = ("127.0.0.1", 50000)
WILDCARD_HOSTS = ["localhost", "127.0.0.1", ".example.com"]
# Names a ".example.com" entry matched by suffix although they are not host names: the
# first three ended in werkzeug as a bare 500 without the security headers, the rest
# were served as if they were a subdomain.
MALFORMED_NAMES = [
    pytest.param("a..example.com", id="empty-label"),
    pytest.param(".example.com", id="leading-dot"),
    pytest.param("x" * 64 + ".example.com", id="label-of-64"),
    pytest.param("-a.example.com", id="leading-hyphen"),
    pytest.param("a-.example.com", id="trailing-hyphen"),
    pytest.param("xn--.example.com", id="empty-punycode"),
    pytest.param("a." * 122 + "example.com", id="name-of-255"),
    pytest.param("a.example.com.", id="trailing-dot"),
]
# The test client cannot even build a request for these, so they go over a socket only.
MALFORMED_LITERALS = [
    pytest.param("[:::1]", id="bad-ipv6"),
    pytest.param("[::1", id="unclosed-bracket"),
    pytest.param("[127.0.0.1]", id="bracketed-ipv4"),
]


async def fail_login(tmp_path: Path, database: str, hops: int, headers: dict[str, str]) -> None:
    """Fail one login from ``SOCKET_PEER`` with ``headers``, behind ``hops`` proxies."""
    app = create_app(settings_at_head(tmp_path, database, TRUSTED_PROXY_HOPS=hops))
    async with app.test_app():
        client = app.test_client()
        form = {"username": "nobody", "password": "not the password at all"}
        form["csrf_token"] = await csrf_token(client)
        await client.post("/login", form=form, headers=headers, scope_base={"client": SOCKET_PEER})


@pytest.mark.parametrize(
    ("hops", "headers", "address"),
    [
        (0, {"X-Forwarded-For": "203.0.113.7"}, "127.0.0.1"),
        (1, {"X-Forwarded-For": "203.0.113.7"}, "203.0.113.7"),
        (1, {"X-Forwarded-For": "198.51.100.9, 203.0.113.7"}, "203.0.113.7"),
        (2, {"X-Forwarded-For": "198.51.100.9, 203.0.113.7"}, "198.51.100.9"),
        (1, {"Forwarded": "for=203.0.113.7"}, "127.0.0.1"),
    ],
    ids=[
        "untrusted-header-ignored",
        "one-proxy",
        "client-typed-entry-ignored",
        "two-proxies",
        "forwarded-header-ignored",
    ],
)
async def test_audit_log_records_the_address_the_trusted_proxies_saw(
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
    database: str,
    hops: int,
    headers: dict[str, str],
    address: str,
) -> None:
    caplog.set_level(logging.INFO, logger="quartapp.audit")

    await fail_login(tmp_path, database, hops, headers)

    events = [json.loads(r.getMessage()) for r in caplog.records if r.name == "quartapp.audit"]
    assert [(e["event"], e["addr"]) for e in events] == [("login_failed", address)]


SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "strict-origin-when-cross-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
}


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/", 200),
        ("GET", "/login", 200),
        ("GET", "/hello", 302),
        ("GET", "/nowhere", 404),
        ("DELETE", "/", 405),
        ("POST", "/login", 400),
        ("GET", "/static/style.css", 200),
        ("GET", "/healthz", 200),
    ],
)
async def test_every_response_has_the_security_headers(
    client: TestClientProtocol, method: str, path: str, status: int
) -> None:
    # quart.typing's TestClientProtocol.open gives json no default (QuartClient.open does).
    response = await client.open(path, method=method)  # type: ignore[call-arg]

    assert response.status_code == status
    for name, value in SECURITY_HEADERS.items():
        assert response.headers[name] == value
    policy = response.headers["Content-Security-Policy"]
    for directive in ("object-src 'none'", "base-uri 'none'", "frame-ancestors 'none'"):
        assert directive in policy
    assert "unsafe-inline" not in policy
    assert "Server" not in response.headers


async def test_error_page_from_a_failing_view_has_the_headers(
    tmp_path: Path, database: str
) -> None:
    app = create_app(settings_at_head(tmp_path, database))

    @app.get("/boom")
    async def boom() -> str:
        raise RuntimeError("a bug")

    async with app.test_app():
        response = await app.test_client().get("/boom")

    assert response.status_code == 500
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]


async def test_templates_use_no_inline_script_or_style(auth: AuthActions) -> None:
    await auth.login()
    pages = [await body(await auth.client.get(path)) for path in ("/", "/hello", "/logout")]
    pages.append(await body(await auth.client.get("/nowhere")))

    for page in pages:
        assert "<script" not in page
        assert "<style" not in page
        assert " style=" not in page
        assert " on" + "click=" not in page


@pytest.mark.parametrize(("mode", "hsts"), [("development", False), ("production", True)])
async def test_hsts_only_in_production(
    tmp_path: Path, database: str, mode: str, hsts: bool
) -> None:
    app = create_app(settings_at_head(tmp_path, database, ENV=mode, TESTING=False))
    async with app.test_app():
        response = await app.test_client().get("/")

    assert ("Strict-Transport-Security" in response.headers) is hsts


@pytest.mark.parametrize("path", ["/", "/login", "/hello", "/welcome"])
async def test_pages_that_depend_on_the_login_are_not_cached(auth: AuthActions, path: str) -> None:
    await auth.login()

    response = await auth.client.get(path)

    assert response.headers["Cache-Control"] == "no-store"
    assert "cookie" in response.headers["Vary"].lower()


async def test_static_files_stay_cacheable(client: TestClientProtocol) -> None:
    response = await client.get("/static/style.css")

    assert "no-store" not in response.headers.get("Cache-Control", "")


@pytest.mark.parametrize(
    "host", ["evil.example", "localhost.evil.example", "127.0.0.2", "bad host", "x:99999"]
)
async def test_unknown_host_gets_400_before_any_view(app: Quart, host: str) -> None:
    client = app.test_client()

    response = await client.get("/login", headers={"Host": host})

    assert response.status_code == 400
    assert "csrf_token" not in await body(response)
    assert "Set-Cookie" not in response.headers


@pytest.mark.parametrize("host", ["localhost", "localhost:8000"])
async def test_configured_host_is_served(app: Quart, host: str) -> None:
    response = await app.test_client().get("/", headers={"Host": host})

    assert response.status_code == 200


def middlewares(app: Quart) -> Iterator[object]:
    """The ASGI layers around the app, outermost first."""
    layer: object = app.asgi_app
    while layer is not None:
        yield layer
        layer = getattr(layer, "app", None)


async def test_trusted_hosts_are_remembered_and_refused_ones_never_are(app: Quart) -> None:
    client = app.test_client()
    guard = next(m for m in middlewares(app) if isinstance(m, HostGuard))

    for _ in range(2):
        assert (await client.get("/", headers={"Host": "localhost:8000"})).status_code == 200
        assert (await client.get("/", headers={"Host": "evil.example"})).status_code == 400

    assert guard.known == {"localhost:8000"}
    for number in range(KNOWN_HOSTS + 1):  # bounded, whatever the ports a client tries
        guard.remember(f"localhost:{number + 1}")
    assert len(guard.known) <= KNOWN_HOSTS


async def test_subdomain_wildcard_host_is_served(tmp_path: Path, database: str) -> None:
    app = create_app(
        settings_at_head(tmp_path, database, ENV="development", TRUSTED_HOSTS=[".example.com"])
    )
    async with app.test_app():
        client = app.test_client()
        ok = await client.get("/", headers={"Host": "app.example.com"})
        refused = await client.get("/", headers={"Host": "example.org"})

    assert (ok.status_code, refused.status_code) == (200, 400)


@pytest.mark.parametrize(
    ("host", "trusted"),
    [
        ("localhost", True),
        ("LOCALHOST:8000", True),
        ("[::1]:8000", True),
        ("[::1]", True),
        ("127.0.0.1:65535", True),
        ("app.example.com", True),
        ("a-b.c.example.com", True),
        ("x" * 63 + ".example.com", True),  # the longest label
        ("a." * 120 + "example.com", True),  # 251 characters; the limit is 253
        ("example.com", False),  # ".example.com" means subdomains
        ("127.0.0.1:0", False),
        ("127.0.0.1:70000", False),
        ("evil.example", False),
        ("localhost.evil.example", False),
        ("user@localhost", False),
        ("localhost/", False),
        ("", False),
    ],
)
def test_host_check_compares_names_without_the_port(host: str, trusted: bool) -> None:
    allowed = ["localhost", "127.0.0.1", "::1", ".example.com"]

    assert host_is_trusted(host, allowed) is trusted


def test_docs_list_the_request_hooks_in_the_order_they_run(app: Quart) -> None:
    hooks = [hook.__name__ for hook in app.before_request_funcs[None]]
    index = (Path(__file__).parents[2] / "docs" / "index.md").read_text()

    assert hooks == [
        "check_host",
        "refuse_unnamed_fields",
        "csrf_protect",
        "load_logged_in_user",
    ]
    for text in (quartapp.__doc__ or "", index):
        positions = [text.find(name) for name in hooks]
        assert -1 not in positions
        assert positions == sorted(positions)


@pytest.mark.parametrize("host", [*MALFORMED_NAMES, *MALFORMED_LITERALS])
def test_host_check_refuses_malformed_names_under_a_wildcard(host: str) -> None:
    assert host_is_trusted(host, WILDCARD_HOSTS) is False


@pytest.mark.parametrize("host", MALFORMED_NAMES)
async def test_malformed_host_gets_the_sites_400_page_with_its_headers(
    tmp_path: Path, database: str, host: str
) -> None:
    app = create_app(
        settings_at_head(tmp_path, database, ENV="development", TRUSTED_HOSTS=WILDCARD_HOSTS)
    )
    async with app.test_app():
        response = await app.test_client().get("/", headers={"Host": host})

    assert response.status_code == 400
    text = await body(response)
    assert "Bad request" in text
    assert "Go to the home page" in text
    for name, value in SECURITY_HEADERS.items():
        assert response.headers[name] == value


@pytest.fixture(scope="module")
def wildcard_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A development hypercorn that serves every subdomain of example.com."""
    directory = tmp_path_factory.mktemp("wildcard-server")
    port = free_port()
    env = development_env(directory, QUARTAPP_TRUSTED_HOSTS=json.dumps(WILDCARD_HOSTS))
    with running(hypercorn_command(port), env, port, directory / "logs") as server:
        server.wait_healthy()
        yield server


@pytest.mark.server
@pytest.mark.parametrize("host", [*MALFORMED_NAMES, *MALFORMED_LITERALS])
def test_malformed_host_over_the_wire_gets_the_sites_400_page(
    wildcard_server: Server, host: str
) -> None:
    request = raw_request("GET", "/", host, [("Connection", "close")])

    (response,) = exchange(wildcard_server.port, request).responses

    assert response.status == 400
    assert "Bad request" in response.text
    assert "Go to the home page" in response.text
    for name, value in SECURITY_HEADERS.items():
        assert response.headers.get(name) == value
    assert "Traceback" not in wildcard_server.stderr


@pytest.mark.server
def test_wildcard_subdomain_is_served_over_the_wire(wildcard_server: Server) -> None:
    request = raw_request("GET", "/", "app.example.com", [("Connection", "close")])

    (response,) = exchange(wildcard_server.port, request).responses

    assert response.status == 200


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def refusal_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "quartapp.security" and r.levelno == logging.WARNING
    ]


def test_a_refused_host_is_logged_once_a_minute_per_name(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    refusals = RefusedHosts(clock=clock)

    for _ in range(3):
        refusals.refused("shop.example.org", 1)
    refusals.refused("other.example.org", 1)
    clock.now += 59.9
    refusals.refused("shop.example.org", 1)
    first_minute = refusal_lines(caplog)
    clock.now += 0.2
    refusals.refused("shop.example.org", 1)

    assert len(first_minute) == 2
    assert "'shop.example.org'" in first_minute[0]
    assert "TRUSTED_HOSTS" in first_minute[0]
    assert "'other.example.org'" in first_minute[1]
    assert len(refusal_lines(caplog)) == 3


def test_refused_host_names_kept_are_bounded_dropping_the_oldest(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    refusals = RefusedHosts(clock=clock, limit=1000)

    for number in range(1500):
        refusals.refused(f"h{number}.example.org", 1)
    refusals.refused("h1499.example.org", 1)  # still remembered: no new line
    refusals.refused("h0.example.org", 1)  # forgotten: logged again

    assert len(refusals.last_logged) == 1000
    assert next(iter(refusals.last_logged)) == "'h501.example.org'"
    assert len(refusal_lines(caplog)) == 1501


@pytest.mark.parametrize(
    ("host", "count", "shown"),
    [
        ("evil\r\nWARNING forged line", 1, r"'evil\r\nWARNING forged line'"),
        ("caf\xe9.example.org", 1, r"'caf\xe9.example.org'"),
        ("x" * 5000, 1, "'" + "x" * 100 + "'..."),
        ("", 0, "(no Host header)"),
        ("", 2, "(2 Host headers)"),
    ],
    ids=["newline", "latin-1", "long", "missing", "repeated"],
)
def test_a_refused_host_is_escaped_and_cut_short_in_its_one_line(
    caplog: pytest.LogCaptureFixture, host: str, count: int, shown: str
) -> None:
    RefusedHosts().refused(host, count)

    (line,) = refusal_lines(caplog)
    assert f"refused a request for host {shown}:" in line
    assert "\n" not in line
    assert "\r" not in line
    assert len(line) < 300


@pytest.mark.server
def test_a_refused_host_over_the_wire_is_named_in_one_warning_line(
    wildcard_server: Server,
) -> None:
    host = "shop.example.org"  # not under .example.com
    for _ in range(3):
        request = raw_request("GET", "/", host, [("Connection", "close")])
        (response,) = exchange(wildcard_server.port, request).responses
        assert response.status == 400

    # The line is written before the response is sent, and stderr is line-buffered.
    lines = [line for line in wildcard_server.stderr.splitlines() if host in line]
    assert len(lines) == 1, wildcard_server.stderr
    assert "WARNING" in lines[0]
    assert f"refused a request for host '{host}'" in lines[0]
    assert "TRUSTED_HOSTS" in lines[0]
