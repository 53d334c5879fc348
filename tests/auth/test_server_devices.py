"""Device cookies on a real hypercorn with two workers, on SQLite and PostgreSQL.

The security review's findings 4 and 8 replayed: old device cookies kept their guesses
after a password change, anyone could mint them without limit, and their name and
value revealed the username. Then the way in for an owner locked out on a new browser.
The audit log (stderr) says how many passwords were verified.

They share one server per database (tests/support/shared.py), with Secure cookies as in
production (the test's browsers send them over plain HTTP, as TLS in front would let
them), each as a user of its own; the one that counts verifications counts its own
user's, once the access log holds its own requests (sent with a User-Agent of their own).
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from collections.abc import Iterator
from http.cookiejar import Cookie, CookieJar, DefaultCookiePolicy
from typing import Any

import pytest

from tests.conftest import DATABASES, PASSWORD
from tests.support.server import Browser, Server
from tests.support.shared import Shared, shared_server

pytestmark = pytest.mark.server
WRONG = "wrong password, quite long"
NEW_PASSWORD = "plum tractor seventeen lagoon"
# An audit line, up to the user it names (its keys are sorted: "event" comes before "user").
VERIFIED = re.compile(r'"event": "login_(?:failed|ok)".*"user": "[^"]*"')
CODE = re.compile(r'<code id="device-code">([A-Z0-9-]+)</code>')
# Cookie mechanics, whatever the database behind them (tests/conftest.py's rule).
SQLITE_SHARED = pytest.mark.parametrize("shared", ["sqlite"], indirect=True)


@pytest.fixture(scope="module", params=DATABASES)
def shared(request: pytest.FixtureRequest) -> Iterator[Shared]:
    """One server (two workers) per database, with Secure cookies as in production."""
    with shared_server(request, request.param, QUARTAPP_SESSION_COOKIE_SECURE="true") as started:
        yield started


class LoopbackPolicy(DefaultCookiePolicy):
    """Send Secure cookies over the test's plain HTTP, as TLS in front would let them."""

    def return_ok_secure(self, cookie: Cookie, request: Any) -> bool:
        return True


def new_browser(server: Server) -> Browser:
    """A browser of its own, which sends the servers' Secure cookies over plain HTTP."""
    return Browser(server.base_url, CookieJar(LoopbackPolicy()))


def login(
    browser: Browser, password: str = PASSWORD, username: str = "alice", agent: str = ""
) -> int:
    form = {"username": username, "password": password, "csrf_token": browser.csrf_token("/login")}
    return browser.post("/login", form, {"User-Agent": agent} if agent else None).status


def logout(browser: Browser) -> None:
    assert browser.post("/logout", {"csrf_token": browser.csrf_token("/logout")}).status == 302


def device_cookies(browser: Browser) -> list[Cookie]:
    return [cookie for cookie in browser.cookies if "device-" in cookie.name]


def lock(server: Server, username: str = "alice", agent: str = "") -> None:
    stranger = new_browser(server)
    for _ in range(5):
        assert login(stranger, WRONG, username, agent) == 200
    assert login(stranger, PASSWORD, username, agent) == 429


def verifications(server: Server, user: str, agent: str, logins: int) -> int:
    """``user``'s passwords verified, once the access log holds all ``logins`` POSTs to
    /login sent with the User-Agent ``agent``.

    A request's audit line is written before its access line, which follows the response.
    """
    logged = server.access_entries(logins, method="POST", path="/login", agent=agent)
    assert len(logged) == logins, f"{len(logged)} of {logins} logins logged"
    return sum(f'"user": "{user}"' in line for line in VERIFIED.findall(server.stderr))


def test_old_device_cookies_get_no_guesses_after_a_password_change(shared: Shared) -> None:
    server, user = shared.server, shared.new_user()
    agent = f"old-devices-{secrets.token_hex(4)}"
    old_devices = []
    for _ in range(4):
        browser = new_browser(server)
        assert login(browser, PASSWORD, user, agent) == 302
        logout(browser)
        old_devices.append(browser)
    changer = new_browser(server)
    assert login(changer, PASSWORD, user, agent) == 302
    form = {
        "current_password": PASSWORD,
        "new_password": NEW_PASSWORD,
        "new_password2": NEW_PASSWORD,
        "csrf_token": changer.csrf_token("/account/password"),
    }
    assert changer.post("/account/password", form).status == 302
    logout(changer)
    lock(server, user, agent)
    before = verifications(server, user, agent, logins=11)

    guesses = [login(browser, WRONG, user, agent) for browser in old_devices for _ in range(5)]
    with_the_new_password = [login(browser, NEW_PASSWORD, user, agent) for browser in old_devices]

    assert set(guesses) == {429}
    assert set(with_the_new_password) == {429}
    # Not one of the 24 was checked.
    assert verifications(server, user, agent, logins=35) == before
    # The browser that changed the password was given a fresh device of its own.
    assert login(changer, NEW_PASSWORD, user) == 302


def test_a_login_beyond_the_mint_cap_gets_no_device_cookie(shared: Shared) -> None:
    server, user = shared.server, shared.new_user()
    browsers = [new_browser(server) for _ in range(7)]

    statuses = [login(browser, username=user) for browser in browsers]

    assert statuses == [302] * 7
    assert [len(device_cookies(browser)) for browser in browsers] == [1] * 5 + [0] * 2


def readable(value: str) -> bytes:
    """What anyone can read of a signed cookie value: its base64 payload."""
    payload = value.strip('"').split(".")[0]
    return base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))


@SQLITE_SHARED
def test_the_device_cookie_reveals_no_username(shared: Shared) -> None:
    server, user = shared.server, shared.new_user()
    browser = new_browser(server)
    assert login(browser, username=user) == 302

    (cookie,) = device_cookies(browser)

    assert user not in cookie.name
    assert hashlib.sha256(user.encode()).hexdigest()[:16] not in cookie.name
    assert user not in (cookie.value or "")
    assert user.encode() not in readable(cookie.value or "")


@SQLITE_SHARED
def test_in_production_the_device_cookie_is_a_host_cookie(shared: Shared) -> None:
    server, user = shared.server, shared.new_user()
    browser = new_browser(server)
    form = {"username": user, "password": PASSWORD}

    response = browser.post("/login", {**form, "csrf_token": browser.csrf_token("/login")})

    (header,) = [h for h in response.headers.get_all("Set-Cookie", []) if "device-" in h]
    attributes = [part.strip().lower() for part in header.split(";")]
    assert response.status == 302
    assert header.startswith("__Host-device-")
    assert "secure" in attributes
    assert "path=/" in attributes
    assert not any(part.startswith("domain=") for part in attributes)


def test_a_code_from_the_owners_phone_lets_a_new_laptop_in_while_locked(shared: Shared) -> None:
    server, user = shared.server, shared.new_user()
    phone = new_browser(server)
    assert login(phone, username=user) == 302
    lock(server, user)

    token = phone.csrf_token("/account/sessions")
    shown = phone.post("/account/devices/new", {"csrf_token": token})
    code = CODE.search(shown.text)
    assert code, shown.text
    laptop = new_browser(server)
    entered = laptop.post(
        "/login/device", {"code": code.group(1), "csrf_token": laptop.csrf_token("/login/device")}
    )

    assert entered.status == 302
    assert login(laptop, username=user) == 302
    assert login(new_browser(server), username=user) == 429
    # The code was used up: a stranger who saw it later gets nothing.
    late = new_browser(server)
    again = late.post(
        "/login/device", {"code": code.group(1), "csrf_token": late.csrf_token("/login/device")}
    )
    assert again.status == 400
    assert device_cookies(late) == []
