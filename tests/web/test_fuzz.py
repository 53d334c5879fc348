"""Fuzzing: random hostile requests never get a 5xx and never change an account.

Hypothesis drives one started app through the Quart test client. Its ``@given`` cannot
run ``async def`` tests itself, so the test is synchronous: it makes an event loop,
starts the app on it once, and runs each example's request with ``run_until_complete``.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import string
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlencode

import sqlalchemy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from quart import Quart
from quart.wrappers import Response
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from quartapp import create_app
from quartapp.auth import logins, users
from quartapp.auth import settings as auth_settings
from quartapp.auth.models import Login
from quartapp.db import db
from quartapp.settings import database_url as async_database_url
from tests.conftest import PASSWORD, add_user, query, settings_at_head

METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]
KNOWN_PATHS = [
    "/",
    "/login",
    "/log",
    "/logout",
    "/hello",
    "/welcome",
    "/healthz",
    "/static/style.css",
    "/static/favicon.svg",
]
PATH_SUFFIXES = ["", "/", "//", "/..", "%2e%2e/", "%00", ";x=1", "%2F..%2Fconfig.toml", "%5C.."]
FORM_FIELDS = ["username", "password", "csrf_token", "remember_me", "next", "submit"]
# RFC 9110: a header name is a token; a value is visible ASCII, space, tab or obs-text.
TCHAR = string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~"
FIELD_VALUE = "\t" + "".join(map(chr, range(0x20, 0x7F))) + "".join(map(chr, range(0x80, 0x100)))
# Framing is hypercorn's job: the app never sees a Content-Length that lies.
FRAMING = {"content-length", "transfer-encoding"}
CONTENT_TYPES = [
    "application/x-www-form-urlencoded",
    "application/x-www-form-urlencoded; charset=latin-1",
    "application/x-url-encoded",
    "multipart/form-data",
    "multipart/form-data; boundary=",
    "multipart/form-data; boundary=nothing-like-the-body",
    "application/json",
    "application/json; charset=utf-16",
    "text/plain",
    "application/xml",
    "application/octet-stream",
    "*/*",
    ";;;",
]
HOSTS = [
    "localhost",
    "localhost",
    "localhost",
    "evil.example",
    "localhost:99999",
    "[::1]",
    "",
    ".",
    "a..b",
]


# Placeholders in generated data, replaced per request by tokens that fit its session;
# letters only, so that URL-encoding leaves them as they are.
VALID_TOKEN, OTHER_TOKEN, EXPIRED_TOKEN = "qqValidTokenqq", "qqOtherTokenqq", "qqExpiredTokenqq"
TOKEN_CHOICES = [VALID_TOKEN, OTHER_TOKEN, EXPIRED_TOKEN, "garbage", ""]
SESSIONS = [
    "none",
    "anonymous",
    "logged-in",
    "remembered",
    "expired-login",
    "stale-login",
    "tampered",
    "other-key",
    "garbage",
]
NEXT_VALUES = ["/hello", "//example.com", "/\\example.com", "https://example.com", "/%2F/x"]


Body = tuple[str | None, bytes]  # Content-Type (None: no header) and the bytes


@dataclass(frozen=True)
class FuzzRequest:
    """One generated request; hypothesis prints it when an example fails."""

    method: str
    path: str  # the request target, as sent
    query: str
    host: str
    headers: tuple[tuple[str, str], ...]
    content_type: str | None
    body: bytes
    session: str
    garbage_cookie: str
    header_token: str | None


text = st.text(max_size=40)
nasty_text = st.one_of(
    text,
    st.text(st.characters(max_codepoint=0x1F), max_size=5),
    st.sampled_from(["alice", "ALICE", PASSWORD, " ", "\ufffd", "a" * 65, "x" * 1025]),
)
field_values = st.one_of(nasty_text, st.sampled_from(TOKEN_CHOICES))
field_names = st.one_of(st.sampled_from(FORM_FIELDS), text)


def raw_urlencoded(items: list[tuple[str, str]], junk: bytes) -> bytes:
    """Fields joined without escaping, followed by raw bytes: what no browser sends."""
    return "&".join(f"{name}={value}" for name, value in items).encode() + junk


def multipart(items: list[tuple[str, str, bool]], boundary: str) -> bytes:
    """A multipart body; the flag sends that field as a file upload.

    Names are sent as they come, line breaks included: a part whose name they break
    has no name, which the app must refuse with a 400.
    """
    parts = []
    for name, value, as_file in items:
        disposition = f'form-data; name="{name}"'
        if as_file:
            disposition += '; filename="upload.txt"\r\nContent-Type: text/plain'
        parts.append(f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n{value}\r\n")
    return ("".join(parts) + f"--{boundary}--\r\n").encode()


def form_body(kind: str, items: list[tuple[str, str, bool]], junk: bytes, boundary: str) -> Body:
    """The fields as the given kind of form body, with a matching Content-Type."""
    if kind == "multipart":
        return f"multipart/form-data; boundary={boundary}", multipart(items, boundary)
    fields = [(name, value) for name, value, _ in items]
    if kind == "raw":
        return CONTENT_TYPES[0], raw_urlencoded(fields, junk)
    return CONTENT_TYPES[0], urlencode(fields).encode()


form_items = st.lists(st.tuples(field_names, field_values, st.booleans()), max_size=12)
form_kinds = st.sampled_from(["urlencoded", "urlencoded", "raw", "multipart"])
boundaries = st.text(st.sampled_from(string.ascii_letters + string.digits + "-"), min_size=1)
forms = st.builds(form_body, form_kinds, form_items, st.binary(max_size=8), boundaries)
# Forms that pass the CSRF check, so the login form and logout view see them.
tokened_forms = st.builds(
    form_body,
    form_kinds,
    st.builds(
        lambda login, items, at: [
            *login,
            *items[:at],
            ("csrf_token", VALID_TOKEN, False),
            *items[at:],
        ],
        st.sampled_from([[], [("username", "alice", False), ("password", PASSWORD, False)]]),
        form_items,
        st.integers(0, 12),
    ),
    st.binary(max_size=8),
    boundaries,
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | nasty_text,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(text, children, max_size=4),
    max_leaves=12,
)
bodies: st.SearchStrategy[Body] = st.one_of(
    st.just((None, b"")),
    st.tuples(st.none() | st.sampled_from(CONTENT_TYPES), st.binary(max_size=512)),
    forms,
    # A form body under a Content-Type that does not match it.
    st.tuples(st.sampled_from(CONTENT_TYPES), forms.map(lambda form: form[1])),
    st.tuples(
        st.sampled_from(CONTENT_TYPES[6:8]),
        json_values.map(lambda value: json.dumps(value).encode()),
    ),
    st.just((CONTENT_TYPES[0], b"username=" + b"a" * 70_000)),
)

# Request targets are ASCII on the wire; hypercorn percent-decodes the path itself.
VISIBLE_ASCII = "".join(map(chr, range(0x21, 0x7F)))
ODD_TARGETS = ["*", "http://localhost", "http://localhost/hello", "http://evil.example//login"]
targets = st.one_of(
    st.sampled_from(KNOWN_PATHS + ODD_TARGETS),
    st.builds(str.__add__, st.sampled_from(KNOWN_PATHS), st.sampled_from(PATH_SUFFIXES)),
    text.map(lambda junk: "/" + quote(junk, safe="")),
    text.map(lambda junk: "/static/" + quote(junk, safe="/%")),
    st.text(VISIBLE_ASCII.replace("?", ""), max_size=40).map(lambda junk: "/" + junk),
)
queries = st.one_of(
    st.just(""),
    st.lists(
        st.tuples(
            st.sampled_from(["next", "next", "x"]) | text, st.sampled_from(NEXT_VALUES) | text
        ),
        max_size=3,
    ).map(urlencode),
    st.text(VISIBLE_ASCII, max_size=40),
)
headers = st.lists(
    st.tuples(
        st.text(TCHAR, min_size=1, max_size=16).filter(lambda name: name.lower() not in FRAMING),
        st.text(FIELD_VALUE, max_size=40),
    ),
    max_size=4,
)


def fuzz_request(
    method: str,
    path: str,
    query: str,
    host: str,
    extra: list[tuple[str, str]],
    body: Body,
    session: str,
    garbage_cookie: str,
    header_token: str | None,
) -> FuzzRequest:
    return FuzzRequest(
        method,
        path,
        query,
        host,
        tuple(extra),
        body[0],
        body[1],
        session,
        garbage_cookie,
        header_token,
    )


# Anything at all.
wild_requests = st.builds(
    fuzz_request,
    st.sampled_from(METHODS) | st.text(TCHAR, min_size=1, max_size=10),
    targets,
    queries,
    st.sampled_from(HOSTS) | st.text(FIELD_VALUE, max_size=20),
    headers,
    bodies,
    st.sampled_from(SESSIONS),
    st.text(
        st.characters(min_codepoint=0x21, max_codepoint=0xFF, exclude_characters=";"), max_size=60
    ),
    st.none() | st.sampled_from(TOKEN_CHOICES),
)
# Form posts from a real session with its token, so they get past the host and CSRF
# checks into the views: random fields, credentials, files, duplicates and junk bytes.
form_posts = st.builds(
    fuzz_request,
    st.just("POST"),
    st.sampled_from(["/login", "/login", "/logout"]),
    queries,
    st.just("localhost"),
    st.just([]),
    tokened_forms,
    st.sampled_from(["anonymous", "logged-in", "remembered", "expired-login", "stale-login"]),
    st.just(""),
    st.none() | st.just(VALID_TOKEN),
)
requests = st.one_of(wild_requests, form_posts)


class OldSigner(TimestampSigner):
    """Signs as if it were two days ago, to make expired CSRF tokens."""

    def get_timestamp(self) -> int:
        return int(time.time()) - 2 * 86400


class Sessions:
    """Signed session cookies and CSRF tokens, made the way the app makes them."""

    def __init__(self, app: Quart) -> None:
        self.app = app
        interface: Any = app.session_interface
        self.signer = interface.get_signing_serializer(app)
        other_key = app.config["SECRET_KEY"][::-1]
        self.other_signer = URLSafeTimedSerializer(
            other_key, salt=self.signer.salt, serializer=self.signer.serializer
        )
        self.csrf = URLSafeTimedSerializer(
            app.config["WTF_CSRF_SECRET_KEY"], salt="wtf-csrf-token"
        )
        self.expired_csrf = URLSafeTimedSerializer(
            app.config["WTF_CSRF_SECRET_KEY"], salt="wtf-csrf-token", signer=OldSigner
        )

    async def start_login(self, *, expired: bool = False) -> str:
        """A new server-side login for alice (no password hashing), live or expired."""
        async with self.app.app_context(), db.session() as session:
            user = await users.get_user(session, "alice")
            token = await logins.start(
                session,
                auth_settings.of(self.app),
                user.id,
                remember=False,
                address=None,
                user_agent=None,
            )
            await session.commit()
            if expired:
                row = update(Login).where(Login.id == logins.digest(token))
                await session.execute(row.values(expires_at=0))
                await session.commit()
            return token

    async def cookie(self, kind: str, raw_csrf: str, garbage: str) -> str | None:
        """The session cookie value for a kind of session."""
        data: dict[str, Any] = {"csrf_token": raw_csrf}
        if kind in ("logged-in", "remembered"):
            data.update(login=await self.start_login())
            if kind == "remembered":
                data["_permanent"] = True
        elif kind == "expired-login":
            data.update(login=await self.start_login(expired=True))
        elif kind == "stale-login":
            data.update(login=secrets.token_urlsafe(32))
        if kind == "none":
            return None
        if kind == "garbage":
            return garbage
        if kind == "other-key":
            return str(self.other_signer.dumps(data))
        signed = str(self.signer.dumps(data))
        if kind == "tampered":
            middle = len(signed) // 2
            return signed[:middle] + ("A" if signed[middle] != "A" else "B") + signed[middle + 1 :]
        return signed

    def tokens(self, raw_csrf: str) -> dict[str, str]:
        """What each token placeholder stands for in a session holding ``raw_csrf``."""
        return {
            VALID_TOKEN: str(self.csrf.dumps(raw_csrf)),
            OTHER_TOKEN: str(self.csrf.dumps(secrets.token_hex(20))),
            EXPIRED_TOKEN: str(self.expired_csrf.dumps(raw_csrf)),
        }


def fill(data: bytes, tokens: dict[str, str]) -> bytes:
    """``data`` with each token placeholder replaced by its token."""
    for placeholder, token in tokens.items():
        data = data.replace(placeholder.encode(), token.encode())
    return data


async def send(app: Quart, sessions: Sessions, request: FuzzRequest) -> Response:
    """Send one generated request, with a session and tokens made for it.

    The scope is built here, as hypercorn builds it from the bytes on the wire, and run
    through the test client's connection: the client's own URL handling refuses some
    request targets a server accepts, such as ``//..``.
    """
    raw_csrf = secrets.token_hex(20)
    tokens = sessions.tokens(raw_csrf)
    fields = [("host", request.host), *request.headers]
    if request.content_type is not None:
        fields.append(("content-type", request.content_type))
    cookie = await sessions.cookie(request.session, raw_csrf, request.garbage_cookie)
    if cookie is not None:
        fields.append(("cookie", f"session={cookie}"))
    if request.header_token is not None:
        fields.append(("x-csrftoken", tokens.get(request.header_token, request.header_token)))
    scope: dict[str, Any] = {
        "type": "http",
        "http_version": "1.1",
        "asgi": {"spec_version": "2.1"},
        "method": request.method,
        "scheme": "http",
        "path": unquote(request.path),
        "raw_path": request.path.encode("ascii"),
        "query_string": request.query.encode("ascii"),
        "root_path": "",
        "headers": [
            (name.lower().encode("latin-1"), value.strip(" \t").encode("latin-1"))
            for name, value in fields
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "extensions": {},
    }
    connection_class = app.test_client().http_connection_class
    # A plain dict: hypercorn's HTTPScope TypedDict also requires a lifespan "state",
    # which this request-only scope leaves out.
    async with connection_class(app, scope) as connection:  # type: ignore[arg-type]
        await connection.send(fill(request.body, tokens))
        await connection.send_complete()
    return await connection.as_response()


async def account_rows(engine: AsyncEngine) -> list[tuple[Any, ...]]:
    """Every row of the users table, password hashes included, read past the app."""
    async with engine.connect() as connection:
        result = await connection.execute(sqlalchemy.text("SELECT * FROM users ORDER BY id"))
        return [tuple(row) for row in result.all()]


def test_random_hostile_requests_get_no_5xx_and_change_no_account(
    tmp_path: Path, database: str
) -> None:
    config = settings_at_head(
        tmp_path,
        database,
        LOGIN_FAILURES_PER_USER=1_000_000,
        LOGIN_FAILURES_PER_ADDRESS=1_000_000,
    )
    app = create_app(config)
    loop = asyncio.new_event_loop()
    loop.run_until_complete(app.startup())
    # The test's own engine on the same loop, kept for every example: reading the rows
    # costs a query, not a new engine, thread and event loop as conftest's query() does.
    engine = create_async_engine(async_database_url(database))
    try:
        loop.run_until_complete(add_user(app))
        loop.run_until_complete(add_user(app, "bob", PASSWORD + " too"))
        sessions = Sessions(app)
        before = loop.run_until_complete(account_rows(engine))
        assert len(before) == 2
        assert before == query(config, "SELECT * FROM users ORDER BY id")

        # As many examples as the profile says (tests/conftest.py: more under CI=true).
        @settings(
            deadline=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        )
        @given(request=requests)
        def check(request: FuzzRequest) -> None:
            response = loop.run_until_complete(send(app, sessions, request))
            assert response.status_code < 500, response.status_code
            assert loop.run_until_complete(account_rows(engine)) == before

        check()
    finally:
        loop.run_until_complete(engine.dispose())
        loop.run_until_complete(app.shutdown())
        loop.close()
