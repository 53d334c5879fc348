"""The security review's attacks, replayed against a real hypercorn with two workers.

Those whose outcome can hang on the database (a burst over two processes, the lockout a
stranger holds) run on SQLite and on PostgreSQL. Those about how an address is keyed and
how a lockout grows run on SQLite alone: that is the app's own arithmetic, and
tests/auth/test_throttle.py runs the same limits on both databases. The audit log
(stderr) says how many passwords were actually verified: one ``login_failed`` or
``login_ok`` line per verification.

The tests with the default settings share one server per database (tests/support/shared.py),
each as a user of its own, its requests told apart in the access log by their User-Agent;
the two of IPv6 address keys share one behind a forging proxy, each in a /48 of its own.
"""

from __future__ import annotations

import re
import secrets
import statistics
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.conftest import DATABASES, PASSWORD, TIMING, Start, query
from tests.support.server import PLAIN_HTTP_PROXY, Browser, Server
from tests.support.shared import Shared, shared_server

pytestmark = pytest.mark.server
WRONG = "wrong password, quite long"
# Address keys and lockout arithmetic, whatever the database (the module's docstring).
SQLITE_SHARED = pytest.mark.parametrize("shared", ["sqlite"], indirect=True)


@pytest.fixture(scope="module", params=DATABASES)
def shared(request: pytest.FixtureRequest) -> Iterator[Shared]:
    """One server (two workers, the default settings) per database."""
    with shared_server(request, request.param) as started:
        yield started


@pytest.fixture(scope="module")
def proxied(request: pytest.FixtureRequest) -> Iterator[Server]:
    """One SQLite server behind a forging proxy, 5 failed logins per address (/64), for
    the tests of IPv6 address keys (each in a /48 of its own, so their counts never meet).
    """
    settings = {**PLAIN_HTTP_PROXY, "QUARTAPP_LOGIN_FAILURES_PER_ADDRESS": "5"}
    with shared_server(request, "sqlite", workers=2, **settings) as started:
        yield started.server


def post_login(browser: Browser, token: str, username: str, password: str, **headers: str) -> int:
    form = {"username": username, "password": password, "csrf_token": token}
    return browser.post("/login", form, headers=headers).status


def verifications(server: Server, user: str, agent: str, logins: int) -> int:
    """``user``'s passwords verified, once the access log holds all ``logins`` POSTs to
    /login sent with the User-Agent ``agent``.

    A request's audit line is written before its access line, which follows the response.
    """
    logged = server.access_entries(logins, method="POST", path="/login", agent=agent)
    assert len(logged) == logins, f"{len(logged)} of {logins} logins logged"
    return sum(f'"user": "{user}"' in line for line in VERIFIED.findall(server.stderr))


# An audit line, up to the user it names (its keys are sorted: "event" comes before "user").
VERIFIED = re.compile(r'"event": "login_(?:failed|ok)".*"user": "[^"]*"')


def test_a_parallel_burst_over_two_workers_verifies_at_most_the_limit(shared: Shared) -> None:
    server, user = shared.server, shared.new_user()
    agent = {"User-Agent": f"burst-{secrets.token_hex(4)}"}
    browsers = [Browser(server.base_url) for _ in range(100)]

    with ThreadPoolExecutor(len(browsers)) as pool:
        # The forms are fetched side by side too: only the burst of POSTs is the test.
        tokens = list(pool.map(lambda browser: browser.csrf_token("/login"), browsers))
        statuses = list(
            pool.map(lambda b, t: post_login(b, t, user, WRONG, **agent), browsers, tokens)
        )

    # LOGIN_FAILURES_PER_USER, not 100
    assert verifications(server, user, agent["User-Agent"], logins=100) <= 5
    assert set(statuses) <= {200, 429, 503}
    assert statuses.count(200) <= 5
    # The hashing line's fair share turns most of a one-address burst away with 503,
    # uncounted, so how many were counted depends on timing. Guessing on one at a time
    # reaches the lockout, and the burst and the guesses together verify at most 5.
    more = 0
    while post_login(browsers[0], tokens[0], user, WRONG, **agent) != 429:
        more += 1
        assert more <= 5
    assert verifications(server, user, agent["User-Agent"], logins=100 + more + 1) <= 5
    # Past that the name stays locked, even for the right password.
    assert post_login(browsers[0], tokens[0], user, PASSWORD) == 429


def test_rotating_ipv6_addresses_in_one_64_meets_the_address_limit(proxied: Server) -> None:
    browser = Browser(proxied.base_url)
    token = browser.csrf_token("/login")

    # Seven addresses of one /64 (in a /48 of this test's own): one address to the limit.
    statuses = [
        post_login(
            browser, token, f"r{n}", WRONG, **{"X-Forwarded-For": f"2001:db8:8:8:{n:x}::{n:x}"}
        )
        for n in range(1, 8)
    ]

    assert statuses[:5] == [200] * 5
    assert statuses[5:] == [429, 429]


def test_strangers_cannot_lock_the_owner_out_of_their_own_browser(shared: Shared) -> None:
    server, user = shared.server, shared.new_user()
    owner = Browser(server.base_url)
    assert post_login(owner, owner.csrf_token("/login"), user, PASSWORD) == 302
    owner.post("/logout", {"csrf_token": owner.csrf_token("/logout")})
    stranger = Browser(server.base_url)
    token = stranger.csrf_token("/login")
    for _ in range(5):
        post_login(stranger, token, user, WRONG)
    locked = stranger.post("/login", {"username": user, "password": PASSWORD, "csrf_token": token})
    new_browser = Browser(server.base_url)

    owners_login = post_login(owner, owner.csrf_token("/login"), user, PASSWORD)
    strangers_login = post_login(new_browser, new_browser.csrf_token("/login"), user, PASSWORD)

    assert locked.status == 429
    assert owners_login == 302
    assert strangers_login == 429


# The padding is argon2 timing in the app, whatever the database (tests/conftest.py).
@TIMING
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_refusals_take_as_long_for_an_old_hash_as_for_an_unknown_user(start: Start) -> None:
    # alice's hash is made at the cheapest cost (t=2, conftest's database_url); the
    # server runs at t=8.
    server = start(
        workers=1,
        QUARTAPP_ARGON2_TIME_COST="8",
        QUARTAPP_LOGIN_FAILURES_PER_USER="100",
        QUARTAPP_LOGIN_FAILURES_PER_ADDRESS="100",
    )
    browser = Browser(server.base_url)
    token = browser.csrf_token("/login")

    def seconds(username: str) -> float:
        started = time.perf_counter()
        assert post_login(browser, token, username, WRONG) == 200
        return time.perf_counter() - started

    for _ in range(2):  # warm the connection pool and the hashing threads
        seconds("warm-up")
    # In turns, so that a burst of load from elsewhere on the machine slows both alike.
    old_hashes, unknowns = [], []
    for _ in range(5):
        old_hashes.append(seconds("alice"))
        unknowns.append(seconds("nobody"))
    old_hash = statistics.median(old_hashes)
    unknown = statistics.median(unknowns)

    # Unpadded, the old hash answers in about a quarter of the time (2 passes of 8). The
    # padding itself is checked exactly on a fake clock (test_passwords.py); this loose
    # bound only shows it is wired into the real server, on a machine that may be busy.
    assert old_hash / unknown > 0.6, (old_hash, unknown)


def test_rotating_64s_inside_one_56_meets_the_56s_limit(proxied: Server) -> None:
    # 5 per address (/64), so 20 per /56.
    browser = Browser(proxied.base_url)
    token = browser.csrf_token("/login")

    statuses = [
        post_login(
            browser, token, f"n{n}", WRONG, **{"X-Forwarded-For": f"2001:db8:7:6{n:02x}::1"}
        )
        for n in range(21)
    ]
    other_56 = post_login(
        browser, token, "alice", PASSWORD, **{"X-Forwarded-For": "2001:db8:7:700::1"}
    )

    assert statuses == [200] * 20 + [429]
    assert other_56 == 302


@SQLITE_SHARED
def test_a_stranger_cannot_stretch_a_lockout_past_4_hours(shared: Shared) -> None:
    server, user = shared.server, shared.new_user()
    stranger = Browser(server.base_url)
    token = stranger.csrf_token("/login")
    for _ in range(8):  # more windows than the doubling's cap
        statuses = [post_login(stranger, token, user, WRONG) for _ in range(6)]
        assert statuses == [200] * 5 + [429]
        # The window ends while the name is locked; the next one doubles.
        query(
            {"DATABASE_URL": shared.database_url},
            f"UPDATE throttle_counters SET window_end = {time.time() - 1}",
        )
    for _ in range(5):
        post_login(stranger, token, user, WRONG)

    locked = stranger.post("/login", {"username": user, "password": PASSWORD, "csrf_token": token})

    assert locked.status == 429
    assert 8 * 15 * 60 < int(locked.headers["Retry-After"]) <= 16 * 15 * 60
    assert "Try again in 4 hours." in locked.text
    assert "a browser or device you have signed in with before can still sign in" in locked.text
