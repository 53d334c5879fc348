"""Login throttling: per-account, per-address and per-device limits, kept in the database."""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pytest
from argon2 import PasswordHasher
from quart import Quart
from sqlalchemy import event

from quartapp import create_app
from quartapp.auth import credentials, devices, prune, throttle
from quartapp.auth import settings as auth_settings
from quartapp.auth.passwords import passwords
from quartapp.db import db
from tests.conftest import (
    BOTH_DATABASES,
    CSRF_INPUT,
    PASSWORD,
    VALUE,
    AuthActions,
    add_user,
    aquery,
    body,
    csrf_token,
    settings_at_head,
)
from tests.support.settings import auth as auth_settings_with

# The tests marked BOTH_DATABASES are those whose outcome can depend on the database
# (the rule: tests/conftest.py): one for each of the counters' statements (the upsert
# and the lockout's read, the new window, the longer one, the refused attempt that
# writes nothing, a success taken back, the prune), and the races. Which counters an
# attempt counts against (addresses, networks, devices, names) is decided in Python
# before any SQL, so those tests run on SQLite alone.

if TYPE_CHECKING:
    # Only for annotations: a Test* class at module level would be collected by pytest.
    from quart.typing import TestClientProtocol

WRONG = "wrong password, quite long"
TOO_MANY = "Too many attempts"
# Small enough to reach quickly, larger than any single test's failures for one name.
ADDRESS_LIMIT = 12


async def fail(auth: AuthActions, times: int, username: str = "alice") -> None:
    for _ in range(times):
        response = await auth.login(username, WRONG)
        assert response.status_code == 200


@BOTH_DATABASES
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
    windows = await aquery(
        settings, "SELECT scope, window_end FROM throttle_counters ORDER BY scope"
    )
    caplog.clear()

    with caplog.at_level("INFO", logger="quartapp.audit"):
        await auth.login("alice", WRONG)

    events = [re.search(r'"event": "(\w+)"', r.getMessage()) for r in caplog.records]
    assert [e.group(1) for e in events if e] == ["lockout"]
    # A refused attempt does not move the window, so the lockout ends on time.
    assert (
        await aquery(settings, "SELECT scope, window_end FROM throttle_counters ORDER BY scope")
        == windows
    )


async def test_unknown_username_is_throttled_like_a_real_one(auth: AuthActions) -> None:
    await fail(auth, 5, "alice")
    await fail(auth, 5, "nobody")

    real = await auth.login("alice", WRONG)
    unknown = await auth.login("nobody", WRONG)

    assert real.status_code == unknown.status_code == 429
    assert await body(real) == await body(unknown)


@BOTH_DATABASES
async def test_success_resets_the_account_count(auth: AuthActions) -> None:
    await fail(auth, 4)
    assert (await auth.login()).status_code == 302
    await auth.logout()

    await fail(auth, 4)

    assert (await auth.login()).status_code == 302


@pytest.fixture
def settings(tmp_path: Path, database: str) -> dict[str, Any]:
    """A small per-address limit, so the address limit is reached before the account's."""
    return settings_at_head(tmp_path, database, LOGIN_FAILURES_PER_ADDRESS=ADDRESS_LIMIT)


async def test_address_is_limited_across_usernames(auth: AuthActions) -> None:
    for number in range(ADDRESS_LIMIT // 2):
        await fail(auth, 2, f"a{number}")

    response = await auth.login("brand-new-name", WRONG)

    assert response.status_code == 429


async def login_from(
    client: TestClientProtocol, address: str, username: str, password: str
) -> Any:
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
    client: TestClientProtocol, auth: AuthActions
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
    tmp_path: Path, database: str, cheap_hashing: None
) -> None:
    app = create_app(
        settings_at_head(
            tmp_path,
            database,
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


@BOTH_DATABASES
async def test_lockout_ends_when_failures_leave_the_window(
    auth: AuthActions, settings: dict[str, Any]
) -> None:
    await fail(auth, 5)
    assert (await auth.login()).status_code == 429
    await aquery(settings, "UPDATE throttle_counters SET window_end = window_end - 15 * 60 - 1")

    response = await auth.login()

    assert response.status_code == 302


@BOTH_DATABASES
async def test_counts_are_shared_between_workers(
    tmp_path: Path, database: str, cheap_hashing: None
) -> None:
    settings = settings_at_head(tmp_path, database)
    first, second = create_app(settings), create_app(settings)
    async with first.test_app(), second.test_app():
        await add_user(first)
        await fail(AuthActions(first.test_client()), 5)

        response = await AuthActions(second.test_client()).login()

    assert response.status_code == 429


# Parallel bursts: every attempt is counted before its password is hashed


class CountingHasher(PasswordHasher):
    """Real argon2, counting the verifications it does."""

    def __init__(self) -> None:
        super().__init__(time_cost=2, memory_cost=19456, parallelism=1)
        self.verified = 0

    def verify(self, hash: str | bytes, password: str | bytes) -> Literal[True]:
        self.verified += 1
        return super().verify(hash, password)


@BOTH_DATABASES
@pytest.mark.real_hashing
async def test_a_parallel_burst_verifies_no_more_than_the_limit(app: Quart) -> None:
    await add_user(app)
    clients = [app.test_client() for _ in range(30)]
    tokens = [await csrf_token(client) for client in clients]
    async with app.app_context():
        counter = CountingHasher()
        passwords().hasher = counter
        # This test is about the throttle under races, not the line or its shares.
        passwords().queue = passwords().share = 100

    async def attempt(client: TestClientProtocol, token: str) -> int:
        form = {"username": "alice", "password": WRONG, "csrf_token": token}
        return (await client.post("/login", form=form)).status_code

    statuses = await asyncio.gather(*map(attempt, clients, tokens))

    assert counter.verified == 5  # LOGIN_FAILURES_PER_USER
    assert sorted(set(statuses)) == [200, 429]
    assert statuses.count(200) == 5


async def test_a_full_hashing_queue_answers_503_at_once(tmp_path: Path, database: str) -> None:
    settings = settings_at_head(
        tmp_path,
        database,
        HASHING_CONCURRENCY=1,
        HASHING_QUEUE=1,
        LOGIN_FAILURES_PER_USER=100,
        LOGIN_FAILURES_PER_ADDRESS=100,
    )
    app = create_app(settings)
    async with app.test_app():
        await add_user(app)
        clients = [app.test_client() for _ in range(12)]
        tokens = [await csrf_token(client) for client in clients]

        async def attempt(client: TestClientProtocol, token: str) -> Any:
            form = {"username": "alice", "password": WRONG, "csrf_token": token}
            return await client.post("/login", form=form)

        responses = await asyncio.gather(*map(attempt, clients, tokens))

    statuses = [r.status_code for r in responses]
    assert set(statuses) <= {200, 503}
    assert 503 in statuses
    assert 200 in statuses
    assert all(r.headers["Retry-After"] == "1" for r in responses if r.status_code == 503)


@BOTH_DATABASES
async def test_logins_turned_away_for_lack_of_room_are_not_counted(
    tmp_path: Path, database: str
) -> None:
    # Room for two at once: the rest of a burst of the owner's own right password is
    # turned away with 503 before the throttle counts it, so it never locks them out.
    settings = settings_at_head(tmp_path, database, HASHING_CONCURRENCY=1, HASHING_QUEUE=1)
    app = create_app(settings)
    async with app.test_app():
        await add_user(app)
        browsers = [AuthActions(app.test_client()) for _ in range(12)]
        statuses = [r.status_code for r in await asyncio.gather(*(b.login() for b in browsers))]
        afterwards = await AuthActions(app.test_client()).login()

    assert set(statuses) == {302, 503}
    assert afterwards.status_code == 302
    assert await aquery(settings, "SELECT key FROM throttle_counters WHERE scope = 'user'") == []


# Addresses, keyed the way attackers rotate them


@pytest.mark.parametrize(
    ("address", "prefix", "key"),
    [
        ("198.51.100.7", 64, "198.51.100.7"),
        ("2001:db8:1:2:aaaa::1", 64, "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff:ffff:ffff:ffff", 64, "2001:db8:1:2::/64"),
        ("2001:db8:1:2:aaaa::1", 48, "2001:db8:1::/48"),
        ("2001:db8:1:2:aaaa::1", 128, "2001:db8:1:2:aaaa::1/128"),
        ("::ffff:198.51.100.7", 64, "198.51.100.7"),
        (None, 64, "unknown"),
        ("not-an-address", 64, "not-an-address"),
    ],
)
def test_address_keys(address: str | None, prefix: int, key: str) -> None:
    assert throttle.address_key(address, auth_settings_with(THROTTLE_IPV6_PREFIX=prefix)) == key


async def test_rotating_ipv6_addresses_within_a_64_does_not_escape_the_limit(
    tmp_path: Path, database: str, cheap_hashing: None
) -> None:
    settings = settings_at_head(
        tmp_path,
        database,
        TRUSTED_PROXY_HOPS=1,
        LOGIN_FAILURES_PER_ADDRESS=ADDRESS_LIMIT,
    )
    app = create_app(settings)
    async with app.test_app():
        await add_user(app)
        client = app.test_client()
        statuses = []
        for number in range(ADDRESS_LIMIT + 1):
            token = await csrf_token(client)
            response = await client.post(
                "/login",
                form={"username": f"n{number}", "password": WRONG, "csrf_token": token},
                headers={"X-Forwarded-For": f"2001:db8:5:6:{number:x}::{number + 1:x}"},
            )
            statuses.append(response.status_code)
        elsewhere = await client.post(
            "/login",
            form={"username": "alice", "password": PASSWORD, "csrf_token": token},
            headers={"X-Forwarded-For": "2001:db8:5:7::1"},
        )

    assert statuses[:ADDRESS_LIMIT] == [200] * ADDRESS_LIMIT
    assert statuses[-1] == 429
    assert elsewhere.status_code == 302  # another /64 is another client


# Device cookies: strangers cannot lock the owner out


async def test_the_owners_device_logs_in_while_strangers_hold_a_lockout(
    app: Quart, auth: AuthActions
) -> None:
    assert (await auth.login()).status_code == 302  # the owner's browser, once
    await auth.logout()
    stranger = AuthActions(app.test_client())
    await fail(stranger, 5)
    assert (await stranger.login()).status_code == 429

    owner = await auth.login()
    new_browser = await AuthActions(app.test_client()).login()

    assert owner.status_code == 302
    assert new_browser.status_code == 429


async def test_a_device_has_a_small_limit_of_its_own(app: Quart, auth: AuthActions) -> None:
    await auth.login()
    await auth.logout()

    await fail(auth, 5)
    locked = await auth.login()
    stranger = await AuthActions(app.test_client()).login()

    assert locked.status_code == 429
    # The device's failures did not count against the username.
    assert stranger.status_code == 302


async def test_a_forged_or_other_users_device_cookie_is_not_trusted(
    app: Quart, auth: AuthActions
) -> None:
    await add_user(app, "bob", PASSWORD + " too")
    bob = AuthActions(app.test_client())
    await bob.login("bob", PASSWORD + " too")  # bob's browser has bob's device cookie
    stranger = AuthActions(app.test_client())
    await fail(stranger, 5)
    name = devices.cookie_name(auth_settings.of(app), "alice")
    jar = bob.client.cookie_jar or ()
    bob_cookie = next(c.value or "" for c in jar if c.name.startswith("device-"))
    for value in ("forged", bob_cookie):
        browser = AuthActions(app.test_client())
        browser.client.set_cookie("localhost", name, value)

        assert (await browser.login()).status_code == 429


async def test_the_lockout_page_is_the_same_with_or_without_a_trusted_device(
    app: Quart, auth: AuthActions, caplog: pytest.LogCaptureFixture
) -> None:
    await auth.login()
    await auth.logout()
    await fail(auth, 5)  # the device's own limit
    stranger = AuthActions(app.test_client())
    await fail(stranger, 5)  # the username's limit
    caplog.clear()

    with caplog.at_level("INFO", logger="quartapp.audit"):
        device_page = await auth.login()
        stranger_page = await stranger.login()

    assert device_page.status_code == stranger_page.status_code == 429
    assert await body(device_page) == await body(stranger_page)
    first, second = (json.loads(r.getMessage()) for r in caplog.records)
    assert first.keys() == second.keys()


@BOTH_DATABASES
async def test_repeated_lockouts_without_a_device_grow_longer(
    auth: AuthActions, settings: dict[str, Any]
) -> None:
    await fail(auth, 5)
    assert (await auth.login()).status_code == 429
    # The window ends while locked: the next one is twice as long.
    await aquery(settings, "UPDATE throttle_counters SET window_end = window_end - 15 * 60 - 1")
    await fail(auth, 5)

    response = await auth.login()

    assert response.status_code == 429
    assert 15 * 60 < int(response.headers["Retry-After"]) <= 2 * 15 * 60


# Refused attempts cost nothing lasting: no count, no row, no place in line (issue 12)


@BOTH_DATABASES
async def test_refused_attempts_are_answered_without_counting(
    auth: AuthActions, settings: dict[str, Any]
) -> None:
    await fail(auth, 5)
    counts = "SELECT scope, key, attempts, window_end FROM throttle_counters ORDER BY scope"
    before = await aquery(settings, counts)

    statuses = [(await auth.login("alice", WRONG)).status_code for _ in range(10)]

    assert statuses == [429] * 10
    assert await aquery(settings, counts) == before


async def test_an_address_over_its_limit_is_refused_from_memory_for_a_moment(
    app: Quart, auth: AuthActions
) -> None:
    for number in range(ADDRESS_LIMIT):
        await fail(auth, 1, f"a{number}")
    assert (await auth.login("the-first-refused", WRONG)).status_code == 429
    async with app.app_context():
        engine = db.store.engine
    read: list[str] = []

    def note(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if "throttle_counters" in statement:
            read.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", note)
    try:
        # Within REMEMBER_SECONDS: refused, with its Retry-After, and no counter read.
        remembered = await auth.login("another-name", WRONG)
        assert (remembered.status_code, read) == (429, [])
        assert 0 < int(remembered.headers["Retry-After"]) <= 15 * 60

        # Once it is past, the counters are read again (and still refuse).
        lockouts = credentials.recent_lockouts(app)
        lockouts.clock = lambda: time.monotonic() + credentials.REMEMBER_SECONDS
        assert (await auth.login("a-third-name", WRONG)).status_code == 429
        assert read
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", note)


def test_remembered_lockouts_are_address_ones_ending_with_their_window_and_bounded() -> None:
    now = [100.0]
    lockouts = credentials.RecentLockouts(clock=lambda: now[0], seconds=5.0, at_most=2)

    lockouts.remember("198.51.100.1", throttle.Lockout(60, by_address=False))  # a name's
    lockouts.remember("198.51.100.2", throttle.Lockout(3, by_address=True))
    now[0] += 1

    assert lockouts.get("198.51.100.1") is None
    assert lockouts.get("198.51.100.2") == throttle.Lockout(2, by_address=True)
    now[0] += 2.5  # the lockout's window has ended, before the 5 s are up
    assert lockouts.get("198.51.100.2") is None

    lockouts.remember("198.51.100.3", throttle.Lockout(60, by_address=True))
    lockouts.remember("198.51.100.4", throttle.Lockout(60, by_address=True))
    lockouts.remember("198.51.100.5", throttle.Lockout(60, by_address=True))  # past at_most
    assert lockouts.get("198.51.100.5") is None
    now[0] += 60  # both lockouts over: room again
    lockouts.remember("198.51.100.5", throttle.Lockout(60, by_address=True))
    assert lockouts.get("198.51.100.5") == throttle.Lockout(60, by_address=True)


def test_one_attempt_reads_a_remembered_lockout_again_while_the_others_are_refused() -> None:
    now = [100.0]
    lockouts = credentials.RecentLockouts(clock=lambda: now[0], seconds=1.0)
    lockouts.remember("198.51.100.1", throttle.Lockout(600, by_address=True))
    now[0] += 1.0

    assert lockouts.get("198.51.100.1") is None  # this one reads the counters again
    assert lockouts.get("198.51.100.1") == throttle.Lockout(599, by_address=True)
    lockouts.remember("198.51.100.1", throttle.Lockout(599, by_address=True))  # its answer
    assert lockouts.get("198.51.100.1") == throttle.Lockout(599, by_address=True)

    now[0] += 1.0
    assert lockouts.get("198.51.100.1") is None  # a read whose answer never comes back...
    now[0] += 1.0
    assert lockouts.get("198.51.100.1") is None  # ...is made again a second later
    lockouts.forget("198.51.100.1")  # the read found the address under its limits
    assert lockouts.get("198.51.100.1") is None


async def test_names_tried_from_a_refused_address_get_no_counter(
    auth: AuthActions, settings: dict[str, Any]
) -> None:
    for number in range(ADDRESS_LIMIT):
        await fail(auth, 1, f"a{number}")

    # A flooder past its address limit, posting random 64-character names.
    statuses = [(await auth.login(secrets.token_hex(32), WRONG)).status_code for _ in range(30)]

    assert statuses == [429] * 30
    assert await aquery(settings, "SELECT count(*) FROM throttle_counters") == [
        (ADDRESS_LIMIT + 1,)
    ]


async def test_repeated_lockouts_stop_growing_at_16_windows(
    auth: AuthActions, settings: dict[str, Any]
) -> None:
    for _ in range(throttle.MAX_STRIKES + 2):
        await fail(auth, 5)
        assert (await auth.login()).status_code == 429
        # The window ends while locked: the next one is twice as long, up to 16 times.
        await aquery(settings, f"UPDATE throttle_counters SET window_end = {time.time() - 1}")
    await fail(auth, 5)

    response = await auth.login()

    page = await body(response)
    assert response.status_code == 429
    assert 8 * 15 * 60 < int(response.headers["Retry-After"]) <= 16 * 15 * 60
    assert "Try again in 4 hours." in page
    assert "a browser or device you have signed in with before can still sign in" in page


async def test_an_address_lockout_says_it_is_the_networks(auth: AuthActions) -> None:
    for number in range(ADDRESS_LIMIT):
        await fail(auth, 1, f"a{number}")

    response = await auth.login("alice", WRONG)

    page = await body(response)
    assert response.status_code == 429
    assert "too many failed attempts to sign in from your network" in page
    assert "signed in with before" not in page


# IPv6: a /64 each, and limits on the /56 and /48 around it (issue 12)


def ipv6_app(tmp_path: Path, database: str, **limits: int) -> Quart:
    return create_app(
        settings_at_head(
            tmp_path,
            database,
            TRUSTED_PROXY_HOPS=1,
            LOGIN_FAILURES_PER_ADDRESS=3,
            **limits,
        )
    )


async def post_from(client: TestClientProtocol, token: str, address: str, username: str) -> int:
    password = PASSWORD if username == "alice" else WRONG
    form = {"username": username, "password": password, "csrf_token": token}
    response = await client.post("/login", form=form, headers={"X-Forwarded-For": address})
    return response.status_code


@pytest.mark.parametrize(
    ("address", "networks"),
    [
        ("2001:db8:1:2::/64", ["2001:db8:1::/48", "2001:db8:1::/56"]),
        ("2001:db8:1:2ff::/64", ["2001:db8:1::/48", "2001:db8:1:200::/56"]),
        ("2001:db8:1:200::/56", ["2001:db8:1::/48"]),
        ("2001:db8:1::/48", []),
        ("198.51.100.7", []),
        ("unknown", []),
    ],
)
def test_ipv6_networks_around_an_address_key(address: str, networks: list[str]) -> None:
    assert [key for _, key in throttle.networks(address)] == networks


async def test_rotating_64s_inside_one_56_meets_the_56s_limit(
    tmp_path: Path, database: str, cheap_hashing: None
) -> None:
    app = ipv6_app(tmp_path, database)  # 3 per /64, so 12 per /56 and 48 per /48
    async with app.test_app():
        await add_user(app)
        client = app.test_client()
        token = await csrf_token(client)
        # A new /64 for every attempt, all of them in 2001:db8:7:600::/56.
        statuses = [
            await post_from(client, token, f"2001:db8:7:6{n:02x}::1", f"n{n}") for n in range(13)
        ]
        other_56 = await post_from(client, token, "2001:db8:7:700::1", "alice")

    assert statuses == [200] * 12 + [429]
    assert other_56 == 302


async def test_rotating_56s_inside_one_48_meets_the_48s_limit(
    tmp_path: Path, database: str, cheap_hashing: None
) -> None:
    app = ipv6_app(tmp_path, database, LOGIN_FAILURES_PER_IPV6_48=20)
    async with app.test_app():
        await add_user(app)
        client = app.test_client()
        token = await csrf_token(client)
        first_56 = [
            await post_from(client, token, f"2001:db8:9:1{n:02x}::1", f"a{n}") for n in range(13)
        ]
        second_56 = [
            await post_from(client, token, f"2001:db8:9:2{n:02x}::1", f"b{n}") for n in range(8)
        ]
        third_56 = await post_from(client, token, "2001:db8:9:300::1", "c")
        other_48 = await post_from(client, token, "2001:db8:a::1", "alice")

    assert first_56 == [200] * 12 + [429]
    assert second_56 == [200] * 8
    assert third_56 == 429
    assert other_48 == 302


# Pruning: what a flood writes goes when its window ends, and a pass catches up


async def test_a_flood_leaves_a_bounded_table_once_pruned(
    tmp_path: Path, database: str, cheap_hashing: None
) -> None:
    settings = settings_at_head(
        tmp_path, database, TRUSTED_PROXY_HOPS=1, LOGIN_FAILURES_PER_ADDRESS=5
    )
    app = create_app(settings)
    async with app.test_app():
        await add_user(app)
        client = app.test_client()
        token = await csrf_token(client)
        # One address posting random 64-character names: 5 rows for names, then none.
        for _ in range(40):
            await post_from(client, token, "198.51.100.7", secrets.token_hex(32))
        one_address = (await aquery(settings, "SELECT count(*) FROM throttle_counters"))[0][0]
        # A new address for every attempt: two rows each, none of them ever locked.
        for number in range(40):
            await post_from(client, token, f"10.0.{number}.1", secrets.token_hex(32))
        # And one username that did end locked: remembered for the next window.
        for _ in range(6):
            await post_from(client, token, "203.0.113.5", "victim")
        flooded = (await aquery(settings, "SELECT count(*) FROM throttle_counters"))[0][0]
        await aquery(settings, f"UPDATE throttle_counters SET window_end = {time.time() - 1}")

        async with app.app_context():
            pruned = await prune.prune_pass(db.store.sessionmaker, auth_settings.of(app))

    assert one_address == 1 + 5
    assert flooded == one_address + 2 * 40 + 2
    assert pruned["counters"] == flooded - 1
    assert await aquery(settings, "SELECT scope, key FROM throttle_counters") == [
        ("user", "victim")
    ]


@BOTH_DATABASES
async def test_a_pass_prunes_in_bounded_batches_until_caught_up(
    tmp_path: Path, database: str, cheap_hashing: None
) -> None:
    settings = settings_at_head(tmp_path, database, TRUSTED_PROXY_HOPS=1)
    app = create_app(settings)
    async with app.test_app():
        await add_user(app)
        client = app.test_client()
        token = await csrf_token(client)
        for number in range(12):
            await post_from(client, token, f"10.1.{number}.1", f"n{number}")
        await aquery(settings, f"UPDATE throttle_counters SET window_end = {time.time() - 1}")

        async with app.app_context():
            bounded = await prune.prune_pass(
                db.store.sessionmaker, auth_settings.of(app), batch=5, batches=3
            )
            rest = await prune.prune_pass(
                db.store.sessionmaker, auth_settings.of(app), batch=5, batches=3
            )

    assert (bounded["counters"], rest["counters"]) == (15, 9)
    assert await aquery(settings, "SELECT count(*) FROM throttle_counters") == [(0,)]


async def test_right_passwords_are_taken_back_from_the_56_and_48_too(
    tmp_path: Path, database: str, cheap_hashing: None
) -> None:
    app = ipv6_app(tmp_path, database)  # 3 per /64, 12 per /56
    async with app.test_app():
        await add_user(app)
        statuses = []
        for number in range(13):  # an office logging in from 13 /64s of one /56
            client = app.test_client()
            token = await csrf_token(client)
            address = f"2001:db8:8:6{number:02x}::1"
            statuses.append(await post_from(client, token, address, "alice"))

    assert statuses == [302] * 13
