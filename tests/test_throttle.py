"""Login throttling: per-account and per-address limits, shared through the database."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from quart import Quart
from quart.testing import QuartClient

from quartapp import create_app

from .conftest import (
    CSRF_INPUT,
    PASSWORD,
    VALUE,
    AuthActions,
    add_user,
    body,
    csrf_token,
    make_settings,
    query,
)

WRONG = "wrong password, quite long"
TOO_MANY = "Too many attempts"
# Small enough to reach quickly, larger than any single test's failures for one name.
ADDRESS_LIMIT = 12


async def fail(auth: AuthActions, times: int, username: str = "alice") -> None:
    for _ in range(times):
        response = await auth.login(username, WRONG)
        assert response.status_code == 200


async def test_account_locks_after_five_failures_with_retry_after(auth: AuthActions) -> None:
    await fail(auth, 5)

    response = await auth.login("alice", WRONG)

    page = await body(response)
    assert response.status_code == 429
    assert 0 < int(response.headers["Retry-After"]) <= 15 * 60
    assert TOO_MANY in page
    assert 'href="/static/style.css"' in page


async def test_correct_password_during_lockout_is_refused(auth: AuthActions) -> None:
    await fail(auth, 5)

    response = await auth.login()

    assert response.status_code == 429
    assert (await auth.client.get("/hello")).status_code == 302


async def test_lockout_checks_no_password(
    auth: AuthActions, settings: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    await fail(auth, 5)
    windows = query(settings, "SELECT scope, window_end FROM throttle_counters ORDER BY scope")
    caplog.clear()

    with caplog.at_level("INFO", logger="quartapp.audit"):
        await auth.login("alice", WRONG)

    events = [re.search(r'"event": "(\w+)"', r.getMessage()) for r in caplog.records]
    assert [e.group(1) for e in events if e] == ["lockout"]
    # A refused attempt does not move the window, so the lockout ends on time.
    assert (
        query(settings, "SELECT scope, window_end FROM throttle_counters ORDER BY scope")
        == windows
    )


async def test_unknown_username_is_throttled_like_a_real_one(auth: AuthActions) -> None:
    await fail(auth, 5, "alice")
    await fail(auth, 5, "nobody")

    real = await auth.login("alice", WRONG)
    unknown = await auth.login("nobody", WRONG)

    assert real.status_code == unknown.status_code == 429
    assert await body(real) == await body(unknown)


async def test_success_resets_the_account_count(auth: AuthActions) -> None:
    await fail(auth, 4)
    assert (await auth.login()).status_code == 302
    await auth.logout()

    await fail(auth, 4)

    assert (await auth.login()).status_code == 302


@pytest.fixture
def settings(tmp_path: Path, database: str) -> dict[str, Any]:
    """A small per-address limit, so the address limit is reached before the account's."""
    return make_settings(tmp_path, DATABASE_URL=database, LOGIN_FAILURES_PER_ADDRESS=ADDRESS_LIMIT)


async def test_address_is_limited_across_usernames(auth: AuthActions) -> None:
    for number in range(ADDRESS_LIMIT // 2):
        await fail(auth, 2, f"a{number}")

    response = await auth.login("brand-new-name", WRONG)

    assert response.status_code == 429


async def login_from(client: QuartClient, address: str, username: str, password: str) -> Any:
    """Log in through the form as a browser at ``address`` would."""
    where = {"client": (address, 40000)}
    page = await body(await client.get("/login", scope_base=where))
    field = CSRF_INPUT.search(page)
    token = VALUE.search(field.group(0)) if field else None
    assert token
    form = {"username": username, "password": password, "csrf_token": token.group(1)}
    return await client.post("/login", form=form, scope_base=where)


async def test_other_addresses_are_not_affected(app: Quart, auth: AuthActions) -> None:
    for number in range(ADDRESS_LIMIT):
        await fail(auth, 1, f"a{number}")

    response = await login_from(app.test_client(), "203.0.113.9", "alice", PASSWORD)

    assert response.status_code == 302


async def test_rotating_forwarded_for_does_not_escape_the_limit(
    client: QuartClient, auth: AuthActions
) -> None:
    for number in range(ADDRESS_LIMIT):
        token = await csrf_token(client)
        await client.post(
            "/login",
            form={"username": f"n{number}", "password": WRONG, "csrf_token": token},
            headers={"X-Forwarded-For": f"198.51.100.{number}"},
        )

    response = await auth.login()

    assert response.status_code == 429


async def test_behind_a_trusted_proxy_the_address_it_appends_is_limited(
    tmp_path: Path,
    database: str,
) -> None:
    app = create_app(
        make_settings(
            tmp_path,
            DATABASE_URL=database,
            TRUSTED_PROXY_HOPS=1,
            LOGIN_FAILURES_PER_ADDRESS=ADDRESS_LIMIT,
        )
    )

    async def attempt(username: str, password: str, forwarded: str) -> int:
        client = app.test_client()
        token = await csrf_token(client)
        response = await client.post(
            "/login",
            form={"username": username, "password": password, "csrf_token": token},
            headers={"X-Forwarded-For": forwarded},
        )
        return response.status_code

    async with app.test_app():
        await add_user(app)
        # The client writes whatever it likes first; the proxy appends the real address.
        for number in range(ADDRESS_LIMIT):
            await attempt(f"n{number}", WRONG, f"10.0.0.{number}, 198.51.100.7")

        same_client = await attempt("alice", PASSWORD, "10.9.9.9, 198.51.100.7")
        other_client = await attempt("alice", PASSWORD, "198.51.100.7, 203.0.113.5")

    assert same_client == 429
    assert other_client == 302


async def test_lockout_ends_when_failures_leave_the_window(
    auth: AuthActions, settings: dict[str, Any]
) -> None:
    await fail(auth, 5)
    assert (await auth.login()).status_code == 429
    query(settings, "UPDATE throttle_counters SET window_end = window_end - 15 * 60 - 1")

    response = await auth.login()

    assert response.status_code == 302


async def test_counts_are_shared_between_workers(tmp_path: Path, database: str) -> None:
    settings = make_settings(tmp_path, DATABASE_URL=database)
    first, second = create_app(settings), create_app(settings)
    async with first.test_app(), second.test_app():
        await add_user(first)
        await fail(AuthActions(first.test_client()), 5)

        response = await AuthActions(second.test_client()).login()

    assert response.status_code == 429
