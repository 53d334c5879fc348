"""The database away, full or silent: the site answers 503 with Retry-After, then recovers.

A real PostgreSQL is stopped mid-run and started again; a tiny pool is exhausted on
both databases; and the app is pointed at a listener that accepts connections and
never answers, which must not hang a request.
"""

from __future__ import annotations

import logging
import re
import secrets
import socket
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from quart import Quart
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from quartapp import create_app
from quartapp.db import db
from quartapp.settings import database_url
from tests.conftest import (
    PASSWORD,
    POSTGRES_ONLY,
    AuthActions,
    add_user,
    aquery,
    body,
    csrf_token,
    login_count,
    make_settings,
)
from tests.support.pg import PostgresServer

# The outcomes here can depend on the database (the rule: tests/conftest.py).
pytestmark = pytest.mark.both_databases

UNAVAILABLE = "The site cannot answer right now."
FAST = {"DATABASE_CONNECT_TIMEOUT": 1, "DATABASE_POOL_TIMEOUT": 1, "DATABASE_STATEMENT_TIMEOUT": 1}


def assert_unavailable(response: Any, text: str) -> None:
    assert response.status_code == 503
    assert response.headers["Retry-After"].isdigit()
    assert UNAVAILABLE in text
    # The site's own page, with its security headers, not a bare error.
    assert "Content-Security-Policy" in response.headers


def database_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "quartapp.errors"]


@pytest.mark.postgres
async def test_stopped_postgres_gives_503s_then_recovers(
    own_postgres: PostgresServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(tmp_path, DATABASE_URL=own_postgres.url(), **FAST)
    app = create_app(settings)
    async with app.test_app():
        await add_user(app)
        auth = AuthActions(app.test_client())
        assert (await auth.login()).status_code == 302
        anonymous = app.test_client()
        token = await csrf_token(anonymous)
        # A clean shutdown: the test's tables must be there when it comes back.
        own_postgres.stop("fast")
        caplog.clear()

        hello = await auth.client.get("/hello")
        health = await auth.client.get("/healthz")
        login = await anonymous.post(
            "/login", form={"username": "alice", "password": PASSWORD, "csrf_token": token}
        )
        hello_text, login_text = await body(hello), await body(login)

        own_postgres.start()
        recovered = await auth.client.get("/hello")

    assert_unavailable(hello, hello_text)
    # The header still shows who is signed in, not "Sign in", and a way to try again.
    assert "Signed in as <strong>alice</strong>" in hello_text
    assert '<a href="/login">Sign in</a>' not in hello_text
    assert '<a href="/hello">Try again</a>' in hello_text
    assert health.status_code == 503
    assert health.headers["Retry-After"].isdigit()  # a router or monitor knows when to ask
    assert_unavailable(login, login_text)
    # One line per failure, never a traceback.
    warnings = database_warnings(caplog)
    assert warnings
    assert all(r.exc_info is None and "\n" not in r.getMessage() for r in warnings)
    assert recovered.status_code == 200


@pytest.mark.postgres
async def test_login_while_postgres_is_down_records_nothing(
    own_postgres: PostgresServer, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path, DATABASE_URL=own_postgres.url(), **FAST)
    app = create_app(settings)
    async with app.test_app():
        await add_user(app)
        client = app.test_client()
        token = await csrf_token(client)
        own_postgres.stop("fast")

        response = await client.post(
            "/login", form={"username": "alice", "password": PASSWORD, "csrf_token": token}
        )
        text = await body(response)
        own_postgres.start()

    assert_unavailable(response, text)
    assert not [c for c in response.headers.getlist("Set-Cookie") if "login" in c]
    assert await login_count(settings) == 0
    # The form again, with the username as typed and never the password.
    assert "<title>Temporarily unavailable · Sign in · quartapp</title>" in text
    assert re.search(r'<input[^>]*name="username"[^>]*value="alice"', text)
    assert PASSWORD not in text
    assert 'name="csrf_token"' in text


@POSTGRES_ONLY
async def test_a_login_whose_record_fails_is_not_half_done(settings: dict[str, Any]) -> None:
    app = create_app({**settings, **FAST})
    async with app.test_app():
        await add_user(app)
        auth = AuthActions(app.test_client())
        # Another session holds the logins table: the password is checked, but the
        # login cannot be recorded within the statement timeout.
        async with db_lock(app, "LOCK TABLE logins IN ACCESS EXCLUSIVE MODE"):
            response = await auth.login()
            text = await body(response)
        after = await auth.client.get("/hello")

    assert_unavailable(response, text)
    assert after.status_code == 302
    assert await login_count(settings) == 0


@asynccontextmanager
async def db_lock(app: Quart, statement: str) -> AsyncIterator[None]:
    """Hold a lock in a transaction of its own for the block's duration."""
    async with app.app_context(), db.store.engine.connect() as connection:
        await connection.begin()
        await connection.execute(text(statement))
        try:
            yield
        finally:
            await connection.rollback()


async def test_exhausted_pool_gives_503_not_a_hang(
    settings: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    tiny = {**settings, **FAST, "DATABASE_POOL_SIZE": 1, "DATABASE_MAX_OVERFLOW": 0}
    app = create_app(tiny)
    async with app.test_app():
        await add_user(app)
        auth = AuthActions(app.test_client())
        await auth.login()
        async with app.app_context():
            held = await db.store.engine.connect()
            try:
                started = time.monotonic()
                response = await auth.client.get("/hello")
                waited = time.monotonic() - started
                text = await body(response)
            finally:
                await held.close()
        recovered = await auth.client.get("/hello")

    assert_unavailable(response, text)
    assert waited < 10  # the pool timeout, not a hang
    assert recovered.status_code == 200
    assert "Signed in as <strong>alice</strong>" in text
    assert '<a href="/login">Sign in</a>' not in text


async def test_a_sign_in_during_an_outage_keeps_the_username_and_the_form(
    settings: dict[str, Any],
) -> None:
    tiny = {**settings, **FAST, "DATABASE_POOL_SIZE": 1, "DATABASE_MAX_OVERFLOW": 0}
    app = create_app(tiny)
    async with app.test_app():
        await add_user(app)
        client = app.test_client()
        token = await csrf_token(client, "/login?next=/account/sessions")
        async with app.app_context():
            held = await db.store.engine.connect()
            try:
                response = await client.post(
                    "/login?next=/account/sessions",
                    form={"username": "alice", "password": PASSWORD, "csrf_token": token},
                )
                text = await body(response)
            finally:
                await held.close()
        # The form it got back works once the database answers again.
        retry = await client.post(
            "/login?next=/account/sessions",
            form={"username": "alice", "password": PASSWORD, "csrf_token": form_token(text)},
        )

    assert_unavailable(response, text)
    assert re.search(r'<input[^>]*name="username"[^>]*value="alice"', text)
    assert PASSWORD not in text
    assert 'action="/login?next=/account/sessions"' in text
    assert "Signed in as" not in text  # still anonymous: the nav says so
    assert (retry.status_code, retry.headers["Location"]) == (302, "/account/sessions")


def form_token(page: str) -> str:
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page)
    assert match, page
    return match.group(1)


@POSTGRES_ONLY
async def test_too_many_connections_for_the_role_gives_503(settings: dict[str, Any]) -> None:
    # A plan's connection limit, as a role limit: the app's listening connection for
    # its login cache and one pooled connection; then the test takes the pooled one's
    # place. (Superusers are exempt from connection limits, so this is an ordinary role.)
    role = f"tight_{secrets.token_hex(4)}"
    await aquery(settings, f"CREATE ROLE {role} LOGIN CONNECTION LIMIT 2")
    await aquery(settings, f"GRANT ALL ON ALL TABLES IN SCHEMA public TO {role}")
    await aquery(settings, f"GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO {role}")
    url = settings["DATABASE_URL"].replace("postgres@", f"{role}@")
    app = create_app({**settings, **FAST, "DATABASE_URL": url})
    async with app.test_app():
        await add_user(app)
        auth = AuthActions(app.test_client())
        await auth.login()
        async with app.app_context():
            await db.store.engine.dispose()
        blocker = create_async_engine(database_url(url), poolclass=NullPool)
        held = await blocker.connect()
        await held.exec_driver_sql("SELECT 1")
        try:
            response = await auth.client.get("/hello")
            text = await body(response)
        finally:
            await held.close()
            await blocker.dispose()

    assert_unavailable(response, text)


@pytest.fixture
def silent_listener() -> Iterator[int]:
    """A port that accepts TCP connections and never says a word."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    try:
        yield int(listener.getsockname()[1])
    finally:
        listener.close()


async def test_a_database_that_never_answers_does_not_hang_requests(
    tmp_path: Path, silent_listener: int
) -> None:
    url = f"postgresql://nobody@127.0.0.1:{silent_listener}/none"
    settings = make_settings(tmp_path, DATABASE_URL=url, ENV="production", TESTING=False, **FAST)
    app = create_app(settings)
    async with app.test_app():
        client = app.test_client()
        async with client.session_transaction() as session:
            session["login"] = "a-login-token-from-before-the-outage"
        started = time.monotonic()
        hello = await client.get("/hello")
        hello_text = await body(hello)
        health = await client.get("/healthz")
        elapsed = time.monotonic() - started

    assert_unavailable(hello, hello_text)
    assert health.status_code == 503
    assert elapsed < 15  # seconds, against the 60 s+ hang this replaced
