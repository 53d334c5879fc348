"""Tests for the per-login record: what it stores, and that ending it ends the login."""

from __future__ import annotations

import asyncio
import hashlib
import time
from typing import TYPE_CHECKING, Any

import pytest
from quart import Quart
from quart.testing import QuartCliRunner

from quartapp import create_app
from quartapp.auth import login_cache, logins, prune, users
from quartapp.auth import settings as auth_settings
from quartapp.db import db
from tests.conftest import (
    BOTH_DATABASES,
    AuthActions,
    add_user,
    aquery,
    body,
    cookie_value,
    invoke,
    login_count,
    replay,
)

# The tests marked BOTH_DATABASES are those whose outcome can depend on the database
# (the rule: tests/conftest.py): one for each statement on logins (the delete at logout,
# the prunes, the lookup that deletes an expired row, the cap per user, the rotation)
# and the news of ended logins between apps (NOTIFY on PostgreSQL). What the row holds
# and what a cached record decides are worked out in Python: SQLite alone.

if TYPE_CHECKING:
    # Only for annotations: a Test* class at module level would be collected by pytest.
    from quart.typing import TestClientProtocol

# Logins


@BOTH_DATABASES
@pytest.mark.usefixtures("app")
async def test_logout_deletes_the_login_row(auth: AuthActions, settings: dict[str, Any]) -> None:
    await auth.login()
    assert await login_count(settings) == 1

    await auth.logout()

    assert await login_count(settings) == 0


async def test_login_row_keeps_only_a_digest_of_the_cookie_token(
    auth: AuthActions, client: TestClientProtocol, settings: dict[str, Any]
) -> None:
    await auth.login()
    async with client.session_transaction() as session:
        token = session["login"]

    assert await aquery(settings, "SELECT id FROM logins") == [
        (hashlib.sha256(token.encode()).hexdigest(),)
    ]


# Pruning


async def age_all_logins(settings: dict[str, Any], seconds: int) -> None:
    await aquery(
        settings,
        f"UPDATE logins SET expires_at = expires_at - {seconds}, "
        f"last_seen = last_seen - {seconds}",
    )


@BOTH_DATABASES
async def test_db_prune_deletes_abandoned_logins_and_keeps_live_ones(
    app: Quart, auth: AuthActions, settings: dict[str, Any], runner: QuartCliRunner
) -> None:
    await auth.login()  # abandoned: its browser never comes back
    await age_all_logins(settings, 13 * 3600)  # past the 12-hour absolute limit
    await AuthActions(app.test_client()).login(remember=True)  # another browser's stays

    result = await invoke(runner, "db", "prune")

    assert result.exit_code == 0, result.output
    assert "pruned 1 expired login(s)" in result.output
    assert await aquery(settings, "SELECT remember FROM logins") == [(True,)]


@BOTH_DATABASES
async def test_an_idle_login_is_kept_until_its_absolute_limit_and_told_it_expired(
    auth: AuthActions, settings: dict[str, Any], runner: QuartCliRunner
) -> None:
    await auth.login()
    await age_all_logins(settings, 31 * 60)  # past the 30-minute idle limit, not the 12 hours

    result = await invoke(runner, "db", "prune")
    page = await auth.client.get("/hello", follow_redirects=True)
    text = await body(page)

    assert "pruned 0 expired login(s)" in result.output
    # The row was still there to say "expired": not "ended from another device".
    assert "Your session has expired. Please sign in again." in text
    assert "ended from another device" not in text
    assert "You need to login first." not in text
    assert await login_count(settings) == 0  # the lookup deleted it


@BOTH_DATABASES
async def test_pruning_works_in_bounded_batches(app: Quart, settings: dict[str, Any]) -> None:
    await add_user(app)
    for _ in range(5):
        await start_login(app)
    await age_all_logins(settings, 13 * 3600)  # past the 12-hour absolute limit

    async with app.app_context():
        first = await prune.prune_once(db.store.sessionmaker, auth_settings.of(app), batch=3)
        second = await prune.prune_once(db.store.sessionmaker, auth_settings.of(app), batch=3)

    assert (first["logins"], second["logins"]) == (3, 2)
    assert await login_count(settings) == 0


async def test_stale_throttle_counters_are_pruned(
    auth: AuthActions, settings: dict[str, Any], runner: QuartCliRunner
) -> None:
    await auth.login(password="a wrong password, long enough")
    assert await aquery(settings, "SELECT count(*) FROM throttle_counters") == [(2,)]
    await aquery(settings, "UPDATE throttle_counters SET window_end = window_end - 2 * 86400")

    result = await invoke(runner, "db", "prune")

    assert "and 2 throttle counter(s)" in result.output
    assert await aquery(settings, "SELECT count(*) FROM throttle_counters") == [(0,)]


async def start_login(app: Quart) -> None:
    async with app.app_context(), db.session() as session:
        user = await users.get_user(session, "alice")
        await logins.start(
            session, auth_settings.of(app), user.id, remember=False, address=None, user_agent=None
        )
        await session.commit()


# The cap on logins per user (LOGINS_PER_USER_MAX)


async def start_logins(app: Quart, count: int) -> list[str]:
    """``count`` logins of alice, one transaction each, oldest first: their row ids."""
    ids = []
    async with app.app_context():
        user_id = (await user_ids(app))["alice"]
        for _ in range(count):
            async with db.session() as session:
                token = await logins.start(
                    session,
                    auth_settings.of(app),
                    user_id,
                    remember=False,
                    address=None,
                    user_agent=None,
                )
                await session.commit()
            ids.append(logins.digest(token))
    return ids


async def user_ids(app: Quart) -> dict[str, int]:
    async with db.session() as session:
        return {user.username: user.id for user in await users.list_users(session)}


async def stored_login_ids(settings: dict[str, Any]) -> set[str]:
    return {login_id for (login_id,) in await aquery(settings, "SELECT id FROM logins")}


async def test_fifty_first_login_ends_the_oldest(app: Quart, settings: dict[str, Any]) -> None:
    await add_user(app)

    started = await start_logins(app, 51)

    assert auth_settings.of(app).logins_per_user_max == 50
    assert await stored_login_ids(settings) == set(started[1:])


@pytest.fixture
def cap(request: pytest.FixtureRequest, settings: dict[str, Any]) -> int:
    """``LOGINS_PER_USER_MAX`` for the app, from the test's parameter."""
    settings["LOGINS_PER_USER_MAX"] = request.param
    return int(request.param)


@BOTH_DATABASES
@pytest.mark.parametrize("cap", [2], indirect=True)
async def test_the_cap_is_per_user(cap: int, app: Quart, settings: dict[str, Any]) -> None:
    await add_user(app)
    await add_user(app, "bob")
    async with app.app_context(), db.session() as session:
        bob = (await user_ids(app))["bob"]
        await logins.start(
            session, auth_settings.of(app), bob, remember=False, address=None, user_agent=None
        )
        await session.commit()

    started = await start_logins(app, 3)

    assert len(await stored_login_ids(settings)) == 3
    assert started[0] not in await stored_login_ids(settings)


@pytest.mark.parametrize("cap", [3], indirect=True)
async def test_the_cap_setting_ends_the_oldest_browser_at_login(
    cap: int, app: Quart, settings: dict[str, Any]
) -> None:
    await add_user(app)
    browsers = [AuthActions(app.test_client()) for _ in range(4)]

    for browser in browsers:
        assert (await browser.login()).status_code == 302

    assert await login_count(settings) == 3
    statuses = [(await browser.client.get("/hello")).status_code for browser in browsers]
    assert statuses == [302, 200, 200, 200]


@BOTH_DATABASES
@pytest.mark.parametrize("cap", [3], indirect=True)
async def test_rotating_a_login_at_the_cap_ends_no_other(
    cap: int, app: Quart, settings: dict[str, Any]
) -> None:
    await add_user(app)
    started = await start_logins(app, 3)

    async with app.app_context(), db.session() as session:
        token = await logins.rotate(
            session, auth_settings.of(app), started[0], address=None, user_agent=None
        )
        await session.commit()

    assert token is not None
    assert await stored_login_ids(settings) == {logins.digest(token), *started[1:]}


@pytest.mark.parametrize("cap", [7], indirect=True)
async def test_sessions_page_states_the_cap(cap: int, auth: AuthActions) -> None:
    await auth.login()

    page = await (await auth.client.get("/account/sessions")).get_data(as_text=True)

    assert "You can stay signed in on up to 7 devices; a new sign-in ends the oldest." in page


# The per-process cache of login rows (quartapp.auth.login_cache.Cache)


async def news_heard(app: Quart) -> None:
    """Until ``app`` has heard of logins ended elsewhere (its cache no longer holds them).

    On SQLite that is at once: the lookup reads data_version, as this does. On
    PostgreSQL the notification is on its way; tests/auth/test_revocation.py bounds how
    long it takes across real servers (100 ms at p99).
    """
    deadline = time.monotonic() + 5
    async with app.app_context():
        cache = login_cache.cache()
        while cache.stamp() is not None and len(cache):
            assert time.monotonic() < deadline, "the ended login was never heard of"
            await asyncio.sleep(0.005)


async def cache_ready(app: Quart) -> login_cache.Cache:
    """``app``'s login cache, once it may answer (at once on SQLite; once listening on PG)."""
    deadline = time.monotonic() + 10
    async with app.app_context():
        cache = login_cache.cache()
        while cache.stamp() is None:
            assert time.monotonic() < deadline, "the login cache never became usable"
            await asyncio.sleep(0.01)
    return cache


async def cached_hello(
    app: Quart, client: TestClientProtocol, times: int = 3
) -> login_cache.Cache:
    """Use the login a few times: the first read goes to the database, the rest are hits."""
    cache = await cache_ready(app)
    hits, misses = cache.hits, cache.misses
    for _ in range(times):
        assert (await client.get("/hello")).status_code == 200
    assert (cache.hits - hits, cache.misses - misses) == (times - 1, 1)
    return cache


@BOTH_DATABASES
async def test_cached_login_is_refused_after_revoke_through_the_cli(
    app: Quart, auth: AuthActions, runner: QuartCliRunner
) -> None:
    await auth.login()
    cache = await cached_hello(app, auth.client)

    result = await invoke(runner, "users", "revoke-sessions", "alice")
    await news_heard(app)
    hits, misses = cache.hits, cache.misses

    assert result.exit_code == 0, result.output
    assert (await auth.client.get("/hello")).status_code == 302
    # Refused by the row, read again: the cache no longer answered for it.
    assert (cache.hits - hits, cache.misses - misses) == (0, 1)


@BOTH_DATABASES
async def test_logout_in_one_app_is_refused_by_another_on_the_same_database(
    app: Quart, auth: AuthActions, settings: dict[str, Any]
) -> None:
    await auth.login()
    cookie = cookie_value(auth.client)
    other_app = create_app(settings)
    async with other_app.test_app():
        holder = replay(other_app, cookie)
        await cached_hello(other_app, holder)

        await auth.logout()
        await news_heard(other_app)

        assert (await replay(other_app, cookie).get("/hello")).status_code == 302


async def test_cached_login_is_refused_once_idle_too_long(
    app: Quart, auth: AuthActions, monkeypatch: pytest.MonkeyPatch
) -> None:
    await auth.login()
    cache = await cached_hello(app, auth.client)
    now = time.time()
    hits = cache.hits

    # No write to the database at all: the cached record alone must say it has expired.
    monkeypatch.setattr(time, "time", lambda: now + 31 * 60)
    response = await auth.client.get("/hello")

    assert response.status_code == 302
    assert cache.hits == hits


async def test_cached_login_past_its_absolute_limit_is_refused(
    app: Quart, auth: AuthActions, settings: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    await auth.login()
    ((expires_at,),) = await aquery(settings, "SELECT expires_at FROM logins")
    # Active until half a minute before the limit, and cached then.
    await aquery(settings, f"UPDATE logins SET last_seen = {expires_at - 30}")
    clock = [expires_at - 30]
    monkeypatch.setattr(time, "time", lambda: clock[0])
    cache = await cached_hello(app, auth.client)
    hits = cache.hits

    # Seen 31 s ago, so not idle and not due a write: only the absolute limit ends it.
    clock[0] = expires_at + 1
    response = await auth.client.get("/hello")

    assert response.status_code == 302
    assert cache.hits == hits
    assert await login_count(settings) == 0
