"""Hostile input: every route answers with a clear 4xx page, never a 500, and loses nothing.

Form-level rejections are proved to happen before any credential check: every check
either counts an attempt in ``throttle_counters`` or logs an audit line (``login_failed``,
``login_ok`` or ``lockout``), so a rejection must leave neither, and no account changes.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.cookiejar import Cookie
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

import pytest
from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from quart import Quart, abort, template_rendered
from quart.datastructures import FileStorage
from quart.typing import ResponseReturnValue
from quart.wrappers import Response

from quartapp import create_app
from quartapp.web.errors import PAGES
from quartapp.web.messages import MAX_WAITING, flash
from quartapp.web.navigation import safe_next
from tests.conftest import (
    BOTH_DATABASES,
    PASSWORD,
    TEST_SECRET_KEY,
    AuthActions,
    add_user,
    aquery,
    body,
    cookie_value,
    csrf_token,
    settings_at_head,
)
from tests.support.settings import DEFAULTS

if TYPE_CHECKING:
    # Only for annotations: a Test* class at module level would be collected by pytest.
    from quart.typing import TestClientProtocol

EXPIRED = "The form expired. Please try again."
NOT_VERIFIED = "The form could not be verified. Please try again."
NO_COOKIE = "this browser sent no cookie for this site"
NOT_ALLOWED = "This field contains characters that are not allowed."
SENT_TWICE = "Send this field only once."
NOT_TEXT = "Send this field as text."
STYLESHEET = 'href="/static/style.css"'
LIMIT = DEFAULTS["MAX_CONTENT_LENGTH"]
COOKIE_LIMIT = 4096
FORM = "application/x-www-form-urlencoded"
ROTATED_SECRET_KEY = "rotated-secret-key-0123456789abcdefghijklmn"
ROTATED_CSRF_KEY = "rotated-csrf-key-0123456789abcdefghijklmnop"


# -- helpers -------------------------------------------------------------------------


async def table(app: Quart, name: str) -> list[tuple[Any, ...]]:
    return await aquery(dict(app.config), f"SELECT * FROM {name} ORDER BY 1, 2")


def audit_events(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        json.loads(record.getMessage())["event"]
        for record in caplog.records
        if record.name == "quartapp.audit"
    ]


@dataclass
class Witness:
    """What a credential check leaves behind, and the accounts before the test."""

    app: Quart
    caplog: pytest.LogCaptureFixture
    accounts: list[tuple[Any, ...]]

    async def assert_no_credential_check(self) -> None:
        assert await table(self.app, "throttle_counters") == []
        assert audit_events(self.caplog) == []
        assert await table(self.app, "users") == self.accounts


@pytest.fixture
async def witness(app: Quart, auth: AuthActions, caplog: pytest.LogCaptureFixture) -> Witness:
    """``alice`` exists; the witness notices any credential check from here on."""
    caplog.set_level(logging.INFO, logger="quartapp.audit")
    return Witness(app, caplog, await table(app, "users"))


def assert_site_page(page: str, title: str) -> None:
    """The page is one of ours (our stylesheet, our heading), not a traceback."""
    assert STYLESHEET in page
    assert f"<h1>{title}</h1>" in page
    assert "Traceback" not in page


def field_errors(page: str, field: str) -> list[str]:
    """The messages listed under a form field."""
    found = re.search(rf'<ul class="field-errors" id="{field}-errors">(.*?)</ul>', page, re.S)
    return re.findall(r"<li>(.*?)</li>", found.group(1)) if found else []


def session_cookie_size(response: Response) -> int:
    """Bytes of the ``session=value`` pair a response sets, 0 if it sets none."""
    for header in response.headers.getlist("Set-Cookie"):
        if header.startswith("session="):
            return len(header.split(";", 1)[0].encode())
    return 0


async def post_raw(
    client: TestClientProtocol, data: bytes, content_type: str | None = FORM, **headers: str
) -> Response:
    if content_type is not None:
        headers["Content-Type"] = content_type
    return await client.post("/login", data=data, headers=headers)


class OldSigner(TimestampSigner):
    """Signs as if it were two hours ago: past the CSRF token's one-hour limit."""

    def get_timestamp(self) -> int:
        return int(time.time()) - 2 * 3600


# -- session cookies -----------------------------------------------------------------


def noise(seed: bytes, size: int) -> bytes:
    """Random-looking bytes, the same on every run."""
    return hashlib.shake_256(seed).digest(size)


def hold_cookie(client: TestClientProtocol, value: str) -> None:
    """Put a session cookie in the jar as it is; ``set_cookie`` would quote or refuse it."""
    assert client.cookie_jar is not None
    client.cookie_jar.set_cookie(
        Cookie(
            version=0,
            name="session",
            value=value,
            port=None,
            port_specified=False,
            domain="localhost.local",
            domain_specified=False,
            domain_initial_dot=False,
            path="/",
            path_specified=True,
            secure=False,
            expires=None,
            discard=True,
            comment=None,
            comment_url=None,
            rest={},
        )
    )


def flip(value: str, index: int) -> str:
    return value[:index] + ("A" if value[index] != "A" else "B") + value[index + 1 :]


def signed_with_other_key(app: Quart, value: str) -> str:
    serializer: Any = app.session_interface.get_signing_serializer(app)
    data = serializer.loads(value)
    other = URLSafeTimedSerializer(
        "some-other-secret-key-0123456789abcdefghijk",
        salt=serializer.salt,
        serializer=serializer.serializer,
        signer_kwargs=serializer.signer_kwargs,
    )
    return str(other.dumps(data))


# Each turns a logged-in session cookie into a bad one.
BAD_COOKIES: dict[str, Callable[[Quart, str], str]] = {
    "tampered-payload": lambda app, value: flip(value, 2),
    "tampered-signature": lambda app, value: flip(value, len(value) - 2),
    "signed-with-another-key": signed_with_other_key,
    "random-bytes": lambda app, value: base64.urlsafe_b64encode(noise(b"cookie", 96)).decode(),
    "random-bytes-compressed": lambda app, value: (
        "." + base64.urlsafe_b64encode(noise(b"zlib", 96)).decode()
    ),
    "non-ascii": lambda app, value: "s\u00e9ssion.v\u00e4lue.\u00ff",
    "empty": lambda app, value: "",
    "oversized": lambda app, value: "a" * 8192,
}


@pytest.fixture(params=list(BAD_COOKIES))
async def bad_cookie_client(
    request: pytest.FixtureRequest, app: Quart, auth: AuthActions
) -> TestClientProtocol:
    """A browser holding a bad session cookie, made from alice's real one."""
    await auth.login()
    bad = BAD_COOKIES[request.param](app, cookie_value(auth.client))
    browser = app.test_client()
    hold_cookie(browser, bad)
    return browser


async def test_bad_session_cookie_is_anonymous_on_protected_page(
    bad_cookie_client: TestClientProtocol,
) -> None:
    response = await bad_cookie_client.get("/hello")

    assert response.status_code == 302
    assert response.headers["Location"] == "/login?next=/hello"


async def test_bad_session_cookie_still_gets_the_home_page(
    bad_cookie_client: TestClientProtocol,
) -> None:
    response = await bad_cookie_client.get("/")

    page = await body(response)
    assert response.status_code == 200
    assert 'href="/login"' in page
    assert "Signed in as" not in page


async def test_bad_session_cookie_does_not_stop_a_fresh_login(
    bad_cookie_client: TestClientProtocol,
) -> None:
    response = await AuthActions(bad_cookie_client).login()

    assert response.status_code == 302
    assert response.headers["Location"] == "/hello"
    assert (await bad_cookie_client.get("/hello")).status_code == 200


# -- oversized and non-form bodies ---------------------------------------------------


@pytest.mark.parametrize("path", ["/login", "/logout"])
@pytest.mark.parametrize(
    ("content_type", "data"),
    [
        (FORM, b"csrf_token=x&filler=" + b"a" * LIMIT),
        (FORM, b"username=" + b"a" * 100_000),
        ("multipart/form-data; boundary=b", b"--b\r\n" + b"a" * LIMIT),
    ],
    ids=["urlencoded", "100k-username", "multipart"],
)
async def test_body_over_the_limit_gets_413_page(
    client: TestClientProtocol, path: str, content_type: str, data: bytes
) -> None:
    await client.get("/login")

    response = await client.post(path, data=data, headers={"Content-Type": content_type})

    assert response.status_code == 413
    assert_site_page(await body(response), "Request too large")


NON_FORM_BODIES = [
    ("application/json", b'{"username": "alice", "password": "%s"}' % PASSWORD.encode()),
    ("application/json", b"{not json"),
    ("text/plain", b"username=alice&password=" + PASSWORD.encode()),
    ("application/xml", b"<login><username>alice</username></login>"),
    ("text/xml", b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e "e">]><x>&e;</x>'),
    ("application/octet-stream", noise(b"body", 256)),
    ("multipart/form-data", b"username=alice"),  # no boundary
    (None, b"username=alice&password=" + PASSWORD.encode()),
]


@pytest.mark.parametrize(("content_type", "data"), NON_FORM_BODIES)
async def test_non_form_body_to_login_gets_a_4xx_page(
    client: TestClientProtocol, witness: Witness, content_type: str | None, data: bytes
) -> None:
    await client.get("/login")

    response = await post_raw(client, data, content_type)

    assert response.status_code in (400, 415)
    assert STYLESHEET in await body(response)
    await witness.assert_no_credential_check()


@pytest.mark.parametrize(
    "content_type",
    ["application/json", "application/json; charset=utf-8", "application/vnd.api+json"],
)
@pytest.mark.parametrize(
    "data",
    [
        b'{"username": "alice", "password": "%s"}' % PASSWORD.encode(),
        b'{"username": ["alice"]}',
        b'["alice", "password"]',
        b'"alice"',
        b"42",
        b"null",
        b"true",
    ],
    ids=["object", "object-of-list", "array", "string", "number", "null", "true"],
)
async def test_json_with_valid_csrf_header_gets_415_not_500(
    client: TestClientProtocol, witness: Witness, content_type: str, data: bytes
) -> None:
    token = await csrf_token(client)

    response = await post_raw(client, data, content_type, **{"X-CSRFToken": token})

    assert response.status_code == 415
    assert_site_page(await body(response), "Unsupported form")
    await witness.assert_no_credential_check()


# -- bad field values ----------------------------------------------------------------

PASSWORD_FIELD = b"password=" + PASSWORD.replace(" ", "+").encode()


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        (b"username=%FF%FE&" + PASSWORD_FIELD, "username", NOT_ALLOWED),
        (b"username=alice&password=correct%FFhorse", "password", NOT_ALLOWED),
        (b"username=al%00ice&" + PASSWORD_FIELD, "username", NOT_ALLOWED),
        (b"username=al\x00ice&" + PASSWORD_FIELD, "username", NOT_ALLOWED),
        (b"username=alice&password=correct%00horse", "password", NOT_ALLOWED),
        (b"username=al%1Bice&" + PASSWORD_FIELD, "username", NOT_ALLOWED),
        (b"username=al\x1bice&" + PASSWORD_FIELD, "username", NOT_ALLOWED),
        (b"username=al%7Fice&" + PASSWORD_FIELD, "username", NOT_ALLOWED),
        (b"username=al%C2%85ice&" + PASSWORD_FIELD, "username", NOT_ALLOWED),
        (b"username=alice%0D%0A&" + PASSWORD_FIELD, "username", NOT_ALLOWED),
        (b"username=alice&password=correct%0Ahorse", "password", NOT_ALLOWED),
        (b"username=a&username=b&" + PASSWORD_FIELD, "username", SENT_TWICE),
        (b"username=alice&password=x&password=y", "password", SENT_TWICE),
        (
            b"username=alice&" + PASSWORD_FIELD + b"&remember_me=y&remember_me=y",
            "remember_me",
            SENT_TWICE,
        ),
        (
            b"username=" + b"a" * 60_000 + b"&" + PASSWORD_FIELD,
            "username",
            "Field cannot be longer than 64 characters.",
        ),
        (
            b"username=alice&password=" + b"p" * 60_000,
            "password",
            "Field cannot be longer than 1024 characters.",
        ),
    ],
    ids=[
        "invalid-utf8-username",
        "invalid-utf8-password",
        "nul-username",
        "raw-nul-username",
        "nul-password",
        "escape-username",
        "raw-escape-username",
        "delete-username",
        "c1-control-username",
        "crlf-username",
        "newline-password",
        "duplicate-username",
        "duplicate-password",
        "duplicate-remember",
        "60k-username",
        "60k-password",
    ],
)
async def test_bad_field_gets_form_error_without_credential_check(
    client: TestClientProtocol, witness: Witness, data: bytes, field: str, message: str
) -> None:
    token = await csrf_token(client)

    response = await post_raw(client, data + b"&csrf_token=" + token.encode())

    page = await body(response)
    assert response.status_code == 200
    assert message in field_errors(page, field)
    await witness.assert_no_credential_check()


@pytest.mark.parametrize("field", ["username", "password"])
async def test_field_sent_as_file_gets_form_error_without_credential_check(
    client: TestClientProtocol, witness: Witness, field: str
) -> None:
    form = {"username": "alice", "password": PASSWORD, "csrf_token": await csrf_token(client)}
    del form[field]
    upload = FileStorage(io.BytesIO(b"alice"), filename="alice.txt")

    response = await client.post("/login", form=form, files={field: upload})

    page = await body(response)
    assert response.status_code == 200
    assert NOT_TEXT in field_errors(page, field)
    await witness.assert_no_credential_check()


@pytest.mark.parametrize("path", ["/login", "/logout"])
@pytest.mark.parametrize(
    "disposition", [b"form-data", b'form-data; name="\r"'], ids=["no-name", "name-broken-by-cr"]
)
async def test_multipart_part_without_a_name_gets_400_page(
    client: TestClientProtocol, path: str, disposition: bytes
) -> None:
    data = b"--b\r\nContent-Disposition: " + disposition + b"\r\n\r\nx\r\n--b--\r\n"

    response = await client.post(
        path, data=data, headers={"Content-Type": "multipart/form-data; boundary=b"}
    )

    assert response.status_code == 400
    assert STYLESHEET in await body(response)


async def test_undecodable_body_is_read_as_an_empty_form(
    client: TestClientProtocol, witness: Witness
) -> None:
    token = await csrf_token(client)

    response = await post_raw(
        client, b"username=\xff\xfe&password=\xc3\x28", **{"X-CSRFToken": token}
    )

    page = await body(response)
    assert response.status_code == 200
    assert field_errors(page, "username") == ["Enter your username."]
    assert field_errors(page, "password") == ["Enter your password."]
    await witness.assert_no_credential_check()


async def test_undecodable_body_loses_its_token_too(
    client: TestClientProtocol, witness: Witness
) -> None:
    token = await csrf_token(client)

    response = await post_raw(client, b"username=\xff&csrf_token=" + token.encode())

    assert response.status_code == 400
    assert NOT_VERIFIED in await body(response)
    await witness.assert_no_credential_check()


@BOTH_DATABASES
async def test_witness_sees_a_real_credential_check(
    client: TestClientProtocol, witness: Witness
) -> None:
    token = await csrf_token(client)

    await post_raw(client, b"username=alice&password=wrong&csrf_token=" + token.encode())

    assert len(await table(witness.app, "throttle_counters")) == 2
    assert audit_events(witness.caplog) == ["login_failed"]


# -- methods, paths ------------------------------------------------------------------

ALLOWED = {
    "/": {"GET", "HEAD", "OPTIONS"},
    "/login": {"GET", "HEAD", "OPTIONS", "POST"},
    "/hello": {"GET", "HEAD", "OPTIONS"},
    "/logout": {"GET", "HEAD", "OPTIONS", "POST"},
}


@pytest.mark.parametrize("path", list(ALLOWED))
@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH", "TRACE", "BREW"])
async def test_unsupported_method_gets_405_page_with_allow(
    client: TestClientProtocol, method: str, path: str
) -> None:
    # quart.typing's TestClientProtocol.open gives json no default (QuartClient.open does).
    response = await client.open(path, method=method)  # type: ignore[call-arg]

    assert response.status_code == 405
    assert {m.strip() for m in response.headers["Allow"].split(",")} == ALLOWED[path]
    assert_site_page(await body(response), "Method not allowed")


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/", 200),
        ("/welcome", 200),
        ("/login", 200),
        ("/hello", 302),
        ("/logout", 302),
        ("/log", 301),
        ("/healthz", 200),
        ("/static/style.css", 200),
    ],
)
async def test_head_answers_like_get(client: TestClientProtocol, path: str, status: int) -> None:
    # The body itself is dropped by the server (h11 sends none after HEAD); what the
    # app owes is GET's status and headers.
    get = await client.get(path)

    head = await client.head(path)

    assert head.status_code == get.status_code == status
    assert head.headers.get("Location") == get.headers.get("Location")
    assert head.headers["Content-Type"] == get.headers["Content-Type"]


@pytest.mark.parametrize(
    "path",
    [
        "/nope",
        "/hello/",
        "/login/extra",
        "/%00",
        "/\u00e9t\u00e9",
        "/" + "a" * 4000,
        "/.env",
        "/.git/config",
        "/instance/secrets.toml",
        "/config.toml",
        "/static/",
        "/static/../quartapp/settings/__init__.py",
        "/static/%2e%2e/config.toml",
        "/static/..%2fconfig.toml",
        "/static/%2e%2e%2fREADME.md",
        "/static/..\\config.toml",
        "/static/%2e%2e%5cconfig.toml",
        "/static/style.css%00.txt",
        "/static/./../pyproject.toml",
    ],
)
async def test_unknown_path_or_traversal_gets_404_page(
    client: TestClientProtocol, path: str
) -> None:
    response = await client.get(path)

    page = await body(response)
    assert response.status_code == 404
    assert_site_page(page, "Page not found")
    for secret in ("SECRET_KEY", "def load_config", "[project]", "ARGON2"):
        assert secret not in page


@pytest.mark.parametrize("path", ["/static//etc/passwd", "/static/%2fetc%2fpasswd"])
async def test_doubled_slash_under_static_redirects_on_site_to_a_404(
    client: TestClientProtocol, path: str
) -> None:
    response = await client.get(path)

    location = urlsplit(response.headers["Location"])
    assert response.status_code == 308
    assert (location.netloc, location.path) == ("localhost", "/static/etc/passwd")
    final = await client.get(location.path)
    assert final.status_code == 404
    assert_site_page(await body(final), "Page not found")


# -- error pages ---------------------------------------------------------------------


class Explodes(Exception):
    """Raised by a throwaway view; its handler fails as well."""


@pytest.fixture
async def error_app(tmp_path: Path, database: str) -> AsyncIterator[Quart]:
    """A fresh app with routes that fail on purpose, serving as production would."""
    application = create_app(
        settings_at_head(tmp_path, database, LOGIN_FAILURES_PER_USER=1, PROPAGATE_EXCEPTIONS=False)
    )

    @application.get("/bad")
    async def bad() -> ResponseReturnValue:
        abort(400)

    @application.get("/forbidden")
    async def forbidden() -> ResponseReturnValue:
        abort(403)

    @application.get("/boom")
    async def boom() -> ResponseReturnValue:
        raise RuntimeError("a bug")

    @application.get("/explode")
    async def explode() -> ResponseReturnValue:
        raise Explodes

    @application.errorhandler(Explodes)
    async def handle_explodes(error: Explodes) -> ResponseReturnValue:
        raise RuntimeError("the error handler has a bug too")

    async with application.test_app():
        yield application


async def locked_out(client: TestClientProtocol) -> Response:
    auth = AuthActions(client)
    await auth.login("mallory", "wrong password, quite long")
    return await auth.login("mallory", "wrong password, quite long")


TRIGGERS: dict[int, Callable[[TestClientProtocol], Awaitable[Response]]] = {
    400: lambda client: client.get("/bad"),
    403: lambda client: client.get("/forbidden"),
    404: lambda client: client.get("/no/such/page"),
    405: lambda client: client.put("/"),
    413: lambda client: client.post(
        "/login", data=b"a" * (LIMIT + 1), headers={"Content-Type": FORM}
    ),
    429: locked_out,
    500: lambda client: client.get("/boom"),
}


@contextmanager
def rendered_templates(app: Quart) -> Iterator[list[str]]:
    names: list[str] = []

    async def record(sender: Quart, template: Any, context: dict[str, Any], **extra: Any) -> None:
        names.append(template.name)

    with template_rendered.connected_to(record, app):
        yield names


@pytest.mark.parametrize("code", list(TRIGGERS))
async def test_each_error_renders_its_own_template(error_app: Quart, code: int) -> None:
    with rendered_templates(error_app) as names:
        response = await TRIGGERS[code](error_app.test_client())

    page = await body(response)
    assert response.status_code == code
    assert names[-1] == f"errors/{code}.html"
    assert_site_page(page, PAGES[code][0])


async def test_error_inside_an_error_handler_gets_the_500_page(error_app: Quart) -> None:
    response = await error_app.test_client().get("/explode")

    page = await body(response)
    assert response.status_code == 500
    assert_site_page(page, "Something went wrong")
    assert "Internal Server Error" not in page


@pytest.mark.parametrize("host", [".", "a..b", "x" * 64 + ".example"])
async def test_host_that_cannot_be_routed_gets_400_page(
    client: TestClientProtocol, host: str
) -> None:
    response = await client.get("/", headers={"Host": host})

    assert response.status_code == 400
    assert_site_page(await body(response), "Bad request")


# -- open redirects ------------------------------------------------------------------

# Django's tests/utils_tests/test_http.py, URLHasAllowedHostAndSchemeTests.test_bad_urls.
DJANGO_BAD_URLS = [
    "http://example.com",
    "http:///example.com",
    "https://example.com",
    "ftp://example.com",
    r"\\example.com",
    r"\\\example.com",
    r"/\\/example.com",
    r"\\//example.com",
    r"/\/example.com",
    r"\/example.com",
    r"/\example.com",
    r"http:/\//example.com",
    r"http:\/example.com",
    r"http:/\example.com",
    'javascript:alert("XSS")',
    "\njavascript:alert(x)",
    "java\nscript:alert(x)",
    "\x08//example.com",
    r"http://otherserver\@example.com",
    r"http:\\testserver\@example.com",
    r"http://testserver\me:pass@example.com",
    r"http://testserver\@example.com",
    r"http:\\testserver\confirm\me@example.com",
    "http:999999999",
    "ftp:9999999999",
    "\n",
    "http://[2001:cdba:0000:0000:0000:0000:3257:9652/",
    "http://2001:cdba:0000:0000:0000:0000:3257:9652]/",
]
OWN_BAD_URLS = [
    "%2F%2Fexample.com",
    "%5C%5Cexample.com",
    "/\t/example.com",
    "/\r/example.com",
    "/\n/example.com",
    "\r\n",
    "/hello\r\nLocation: https://example.com",
    "\t//example.com",
    " //example.com",
    " /hello",
    "//example.com",
    "//example.com%2F..",
    "//example.com/%2F..",
    "///example.com",
    "////example.com",
    "/\\\\example.com",
    "https:example.com",
    "https:/example.com",
    "HTTPS://example.com",
    "data:text/html,<script>alert(1)</script>",
    "data:text/html,x",
    "vbscript:msgbox(1)",
    "\uff0f\uff0fexample.com",
    "\u2215\u2215example.com",
    "\x00",
    "\\x00",
    "/\x00",
    "/hello\x7f",
    "hello",
    "./hello",
    "?next=//example.com",
    "#//example.com",
    "/" + "a" * 2048,
]
# Same-site paths that merely look odd: a browser resolves each on this site.
GOOD_URLS = [
    "/hello?param=http://example.com",
    "/url%20with%20spaces/",
    "/hello?next=//example.com",
    "/hello#//example.com",
    "/%2F/example.com",
    "/%5Cexample.com",
    "/%2F%2Fexample.com",
    "/.//example.com",
    "/hello/../welcome",
]


@pytest.mark.parametrize("target", DJANGO_BAD_URLS + OWN_BAD_URLS)
def test_safe_next_refuses_urls_off_this_site(target: str) -> None:
    assert safe_next(target) is None


@pytest.mark.parametrize("target", GOOD_URLS)
def test_safe_next_keeps_paths_on_this_site(target: str) -> None:
    assert safe_next(target) == target
    # Browsers read "\" as "/" in http(s) URLs; even so, the target stays on this host.
    resolved = urljoin("http://localhost/login", target.replace("\\", "/"))
    assert urlsplit(resolved).netloc == "localhost"


async def login_with_next(auth: AuthActions, target: str) -> Any:
    """Log in through the form with ``next`` set to ``target``."""
    token = await csrf_token(auth.client)
    return await auth.client.post(
        "/login",
        form={"username": "alice", "password": PASSWORD, "csrf_token": token},
        query_string={"next": target},
    )


async def test_login_follows_next_only_on_this_site(app: Quart, auth: AuthActions) -> None:
    """Every ``safe_next`` case above through the real form, in one app and one account.

    ``safe_next`` itself is tested case by case above; this checks the view uses it.
    One app for all of them costs one argon2 check per case instead of a new app,
    account and dummy hash each. Each case is a new browser (a new test client), so
    none has a login to end first: half the requests of logging out after each.
    """
    expected = {target: "/hello" for target in DJANGO_BAD_URLS + OWN_BAD_URLS}
    expected.update({target: target for target in GOOD_URLS})
    went = {}
    for target in expected:
        response = await login_with_next(AuthActions(app.test_client()), target)
        assert response.status_code == 302, target
        went[target] = response.headers["Location"]

    assert went == expected


# -- CSRF ----------------------------------------------------------------------------


async def no_token(app: Quart, client: TestClientProtocol) -> str | None:
    await client.get("/login")
    return None


async def garbage_token(app: Quart, client: TestClientProtocol) -> str | None:
    await client.get("/login")
    return "garbage.token.value"


async def expired_token(app: Quart, client: TestClientProtocol) -> str | None:
    await client.get("/login")
    async with client.session_transaction() as session:
        raw = session["csrf_token"]
    serializer = URLSafeTimedSerializer(
        app.config["WTF_CSRF_SECRET_KEY"], salt="wtf-csrf-token", signer=OldSigner
    )
    return str(serializer.dumps(raw))


async def token_without_session(app: Quart, client: TestClientProtocol) -> str | None:
    return await csrf_token(app.test_client())


async def other_sessions_token(app: Quart, client: TestClientProtocol) -> str | None:
    await client.get("/login")
    return await csrf_token(app.test_client())


# Only a token that ran out says the form expired: a retry of the same form cannot
# help the others, so they say what went wrong instead.
@pytest.mark.parametrize(
    ("make_token", "reason", "title", "says"),
    [
        (no_token, "The CSRF token is missing.", "Form not verified", NOT_VERIFIED),
        (garbage_token, "The CSRF token is invalid", "Form not verified", NOT_VERIFIED),
        (expired_token, "The CSRF token has expired.", "Form expired", EXPIRED),
        (
            token_without_session,
            "The CSRF session token is missing.",
            "Form not verified",
            NO_COOKIE,
        ),
        (other_sessions_token, "The CSRF tokens do not match.", "Form not verified", NOT_VERIFIED),
    ],
)
async def test_each_csrf_failure_gets_the_friendly_400_page_saying_why(
    app: Quart,
    client: TestClientProtocol,
    witness: Witness,
    make_token: Callable[[Quart, TestClientProtocol], Awaitable[str | None]],
    reason: str,
    title: str,
    says: str,
) -> None:
    caplog = witness.caplog
    caplog.set_level(logging.INFO, logger="quartapp.errors")
    form = {"username": "alice", "password": PASSWORD}
    token = await make_token(app, client)
    if token is not None:
        form["csrf_token"] = token

    response = await client.post("/login", form=form)

    page = await body(response)
    assert response.status_code == 400
    assert says in page
    assert f"<title>{title} · Sign in · quartapp</title>" in page
    assert_site_page(page, "Sign in")
    assert any(reason in record.getMessage() for record in caplog.records)
    caplog.clear()
    await witness.assert_no_credential_check()


async def test_form_rendered_before_a_key_rotation_gets_the_friendly_400_page(
    tmp_path: Path, database: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="quartapp.errors")
    old = create_app(settings_at_head(tmp_path, database))
    async with old.test_app():
        await add_user(old)
        browser = old.test_client()
        token = await csrf_token(browser)
        cookie = cookie_value(browser)
    new = create_app(
        settings_at_head(
            tmp_path,
            database,
            SECRET_KEY=ROTATED_SECRET_KEY,
            SECRET_KEY_FALLBACKS=[TEST_SECRET_KEY],
            WTF_CSRF_SECRET_KEY=ROTATED_CSRF_KEY,
        )
    )
    async with new.test_app():
        browser = new.test_client()
        browser.set_cookie("localhost", "session", cookie)

        response = await browser.post(
            "/login", form={"username": "alice", "password": PASSWORD, "csrf_token": token}
        )

    assert response.status_code == 400
    assert NOT_VERIFIED in await body(response)
    # The session survived the rotation (thanks to the fallback); the token did not.
    assert any("The CSRF token is invalid" in r.getMessage() for r in caplog.records)


# -- cookie size ---------------------------------------------------------------------


@pytest.fixture
def no_lockout(settings: dict[str, Any]) -> None:
    settings.update(LOGIN_FAILURES_PER_USER=100, LOGIN_FAILURES_PER_ADDRESS=100)


async def test_cookie_stays_small_after_many_failed_logins(
    no_lockout: None, auth: AuthActions
) -> None:
    token = await csrf_token(auth.client)
    sizes = []
    for attempt in range(20):
        response = await auth.client.post(
            "/login",
            form={"username": "alice", "password": f"wrong {attempt}", "csrf_token": token},
        )
        assert response.status_code == 200
        sizes.append(session_cookie_size(response))

    assert max(sizes) < COOKIE_LIMIT


async def test_unread_login_required_flashes_do_not_pile_up(client: TestClientProtocol) -> None:
    sizes = [session_cookie_size(await client.get("/hello")) for _ in range(100)]

    async with client.session_transaction() as session:
        waiting = [tuple(entry) for entry in session["_flashes"]]
    assert waiting == [("warning", "You need to login first.")]
    assert 0 < max(sizes) < COOKIE_LIMIT


async def test_many_different_flashes_keep_the_cookie_under_4kb(
    tmp_path: Path, database: str
) -> None:
    app = create_app(settings_at_head(tmp_path, database))

    @app.get("/flash/<int:number>")
    async def flash_one(number: int) -> ResponseReturnValue:
        # Hex digests barely compress, so each message really adds to the cookie.
        await flash(f"{number}: {hashlib.sha256(str(number).encode()).hexdigest()}")
        return "", 204

    async with app.test_app():
        client = app.test_client()
        sizes = [session_cookie_size(await client.get(f"/flash/{n}")) for n in range(200)]
        async with client.session_transaction() as session:
            waiting = [message for _, message in session["_flashes"]]

    assert max(sizes) < COOKIE_LIMIT
    assert [message.split(":")[0] for message in waiting] == [
        str(n) for n in range(200 - MAX_WAITING, 200)
    ]
