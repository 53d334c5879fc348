"""Device cookies backed by a ``devices`` row, and trusting a new device with a code.

What is trusted is decided by the database: one test of each of its statements (the
lookup, the mint and its caps, forgetting, a code used or kept) and the races run on
PostgreSQL too.
A name is locked by a "stranger" browser's five wrong passwords; whether another
browser then logs in (302) or is refused (429) shows whether its device cookie counted.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import re
import secrets
from http.cookiejar import Cookie
from typing import TYPE_CHECKING, Any

import pytest
from itsdangerous import URLSafeTimedSerializer
from quart import Quart
from quart.wrappers import Response
from werkzeug.datastructures import FileStorage

from quartapp import create_app
from quartapp.auth import devices
from quartapp.auth import settings as auth_settings
from tests.conftest import (
    BOTH_DATABASES,
    CSRF_INPUT,
    PASSWORD,
    TEST_SECRET_KEY,
    VALUE,
    AuthActions,
    add_user,
    aquery,
    body,
    both_databases_for,
    csrf_token,
    invoke,
    settings_at_head,
)

# The tests marked BOTH_DATABASES are those whose outcome can depend on the database
# (the rule: tests/conftest.py); the rest run on SQLite alone.

if TYPE_CHECKING:
    # Only for annotations: a Test* class at module level would be collected by pytest.
    from quart.typing import TestClientProtocol

WRONG = "wrong password, quite long"
NEW_PASSWORD = "a brand new passphrase, also long"
CODE = re.compile(r'<code id="device-code">([A-Z0-9-]+)</code>')


def device_cookies(client: TestClientProtocol) -> list[Cookie]:
    assert client.cookie_jar is not None
    return [c for c in client.cookie_jar if "device-" in c.name]


def copy_device_cookie(app: Quart, source: TestClientProtocol) -> TestClientProtocol:
    """A new browser holding a copy of ``source``'s device cookie, and nothing else."""
    (cookie,) = device_cookies(source)
    other = app.test_client()
    other.set_cookie("localhost", cookie.name, cookie.value or "")
    return other


async def lock(app: Quart, username: str = "alice") -> None:
    """A stranger's wrong guesses lock ``username`` for browsers it does not trust."""
    stranger = AuthActions(app.test_client())
    for _ in range(5):
        assert (await stranger.login(username, WRONG)).status_code == 200
    assert (await stranger.login(username, PASSWORD)).status_code == 429


async def device_rows(settings: dict[str, Any]) -> int:
    return int((await aquery(settings, "SELECT count(*) FROM devices"))[0][0])


async def owners_browser(app: Quart) -> TestClientProtocol:
    """A browser that logged in as alice once (so it holds a device cookie) and out."""
    browser = AuthActions(app.test_client())
    assert (await browser.login()).status_code == 302
    assert len(device_cookies(browser.client)) == 1
    await browser.logout()
    return browser.client


# A device is trusted while its row exists, and no longer


@BOTH_DATABASES
async def test_a_device_cookie_logs_in_while_the_name_is_locked(
    app: Quart, auth: AuthActions
) -> None:
    owner = await owners_browser(app)
    await lock(app)

    assert (await AuthActions(owner).login()).status_code == 302
    assert (await AuthActions(app.test_client()).login()).status_code == 429


async def change_password_on_the_page(client: TestClientProtocol) -> Response:
    form = {
        "current_password": PASSWORD,
        "new_password": NEW_PASSWORD,
        "new_password2": NEW_PASSWORD,
        "csrf_token": await csrf_token(client, "/account/password"),
    }
    return await client.post("/account/password", form=form)


async def _web_password_change(app: Quart, _runner: Any) -> str:
    browser = AuthActions(app.test_client())
    assert (await browser.login()).status_code == 302
    assert (await change_password_on_the_page(browser.client)).status_code == 302
    return NEW_PASSWORD


async def _cli_set_password(app: Quart, runner: Any) -> str:
    result = await invoke(
        runner, "users", "set-password", "alice", "--password-stdin", stdin=f"{NEW_PASSWORD}\n"
    )
    assert result.exit_code == 0, result.output
    return NEW_PASSWORD


async def _cli_revoke_sessions(app: Quart, runner: Any) -> str:
    result = await invoke(runner, "users", "revoke-sessions", "alice")
    assert result.exit_code == 0, result.output
    return PASSWORD


async def _cli_delete_and_recreate(app: Quart, runner: Any) -> str:
    result = await invoke(runner, "users", "delete", "alice", "--yes")
    assert result.exit_code == 0, result.output
    await add_user(app)  # the same name again: the old cookies must not carry over
    return PASSWORD


# One case of each flow on PostgreSQL: change_password (the page's, which mints anew),
# end_logins (revoke-sessions) and delete_account. set-password is the page's flow
# without the new device, and test_flows.py runs it on PostgreSQL.
@both_databases_for(
    "invalidate",
    [_web_password_change, _cli_set_password, _cli_revoke_sessions, _cli_delete_and_recreate],
    ["password-page", "set-password", "revoke-sessions", "delete"],
    postgres=["password-page", "revoke-sessions", "delete"],
)
async def test_old_device_cookies_stop_being_trusted(
    app: Quart, auth: AuthActions, runner: Any, settings: dict[str, Any], invalidate: Any
) -> None:
    owners = [await owners_browser(app) for _ in range(3)]
    copies = [copy_device_cookie(app, owner) for owner in owners]

    password = await invalidate(app, runner)
    await lock(app)

    for browser in owners + copies:
        assert (await AuthActions(browser).login("alice", password)).status_code == 429
    # Only the browser that changed its own password on the page holds a record now.
    assert await device_rows(settings) == (1 if invalidate is _web_password_change else 0)


async def test_the_browser_that_changed_its_password_gets_a_fresh_trusted_device(
    app: Quart, auth: AuthActions
) -> None:
    owner = await owners_browser(app)
    old_cookie = device_cookies(owner)[0].value
    assert (await AuthActions(owner).login()).status_code == 302

    response = await change_password_on_the_page(owner)
    await AuthActions(owner).logout()
    await lock(app)

    assert any("device-" in h for h in response.headers.getlist("Set-Cookie"))
    assert device_cookies(owner)[0].value != old_cookie
    assert (await AuthActions(owner).login("alice", NEW_PASSWORD)).status_code == 302


@BOTH_DATABASES
async def test_log_out_everywhere_else_forgets_the_other_devices_but_this_one(
    app: Quart, auth: AuthActions
) -> None:
    other = await owners_browser(app)
    this = AuthActions(app.test_client())
    assert (await this.login()).status_code == 302
    token = await csrf_token(this.client, "/account/sessions")

    response = await this.client.post("/account/sessions/end-others", form={"csrf_token": token})
    await this.logout()
    await lock(app)

    assert response.status_code == 302
    assert (await AuthActions(other).login()).status_code == 429
    assert (await this.login()).status_code == 302


# Forged, unknown and old-format cookies


def signed(secret_key: str, salt: str, value: Any) -> str:
    return URLSafeTimedSerializer(secret_key, salt=salt).dumps(value)


async def test_a_validly_signed_unknown_nonce_is_ignored(app: Quart, auth: AuthActions) -> None:
    await owners_browser(app)  # alice has a device record, just not this one
    await lock(app)
    browser = app.test_client()
    nonce = secrets.token_urlsafe(16)
    browser.set_cookie(
        "localhost",
        devices.cookie_name(auth_settings.of(app), "alice"),
        signed(TEST_SECRET_KEY, devices.SALT, nonce),
    )

    assert (
        devices.presented(
            {
                devices.cookie_name(auth_settings.of(app), "alice"): signed(
                    TEST_SECRET_KEY, devices.SALT, nonce
                )
            },
            auth_settings.of(app),
            "alice",
        )
        == nonce
    )
    assert (await AuthActions(browser).login()).status_code == 429


async def test_another_users_device_cookie_is_ignored(app: Quart, auth: AuthActions) -> None:
    await add_user(app, "bob", PASSWORD + " too")
    bob = AuthActions(app.test_client())
    assert (await bob.login("bob", PASSWORD + " too")).status_code == 302
    await lock(app)
    browser = app.test_client()
    (bobs,) = device_cookies(bob.client)
    # Bob's valid nonce, presented under the name alice's cookie would have.
    browser.set_cookie(
        "localhost", devices.cookie_name(auth_settings.of(app), "alice"), bobs.value or ""
    )

    assert (await AuthActions(browser).login()).status_code == 429


async def test_an_old_format_device_cookie_is_ignored(app: Quart, auth: AuthActions) -> None:
    await lock(app)
    browser = app.test_client()
    old_name = "device-" + hashlib.sha256(b"alice").hexdigest()[:16]
    old_value = signed(TEST_SECRET_KEY, "quartapp.device", ["alice", secrets.token_urlsafe(16)])
    browser.set_cookie("localhost", old_name, old_value)
    browser.set_cookie("localhost", devices.cookie_name(auth_settings.of(app), "alice"), old_value)

    assert (await AuthActions(browser).login()).status_code == 429


# What the cookie shows


def decoded_payload(value: str) -> bytes:
    """The readable part of an itsdangerous token (its payload, before the dots)."""
    payload = value.split(".")[0]
    return base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))


async def test_the_cookie_name_and_value_do_not_reveal_the_username(
    app: Quart, auth: AuthActions, settings: dict[str, Any]
) -> None:
    owner = await owners_browser(app)
    (cookie,) = device_cookies(owner)
    other_key = create_app({**settings, "SECRET_KEY": "another-secret-key-0123456789abcdefghijk"})

    assert "alice" not in cookie.name
    assert hashlib.sha256(b"alice").hexdigest()[:16] not in cookie.name
    assert cookie.name != devices.cookie_name(auth_settings.of(other_key), "alice")
    assert cookie.name != devices.cookie_name(auth_settings.of(app), "bob")
    assert b"alice" not in decoded_payload(cookie.value or "")
    assert "alice" not in (cookie.value or "")


async def test_with_secure_cookies_the_device_cookie_is_a_host_cookie(
    tmp_path: Any, database: str, cheap_hashing: None
) -> None:
    app = create_app(settings_at_head(tmp_path, database, SESSION_COOKIE_SECURE=True))
    async with app.test_app():
        await add_user(app)
        response = await AuthActions(app.test_client()).login()

    (header,) = [h for h in response.headers.getlist("Set-Cookie") if "device-" in h]
    attributes = [part.strip().lower() for part in header.split(";")]
    assert header.startswith("__Host-device-")
    assert "secure" in attributes
    assert "path=/" in attributes
    assert not any(part.startswith("domain=") for part in attributes)


# The mint cap and the cap per user


@BOTH_DATABASES
async def test_logins_beyond_the_mint_cap_succeed_without_a_device_cookie(
    app: Quart, auth: AuthActions, settings: dict[str, Any]
) -> None:
    browsers = [AuthActions(app.test_client()) for _ in range(7)]

    statuses = [(await browser.login()).status_code for browser in browsers]

    assert statuses == [302] * 7
    assert [len(device_cookies(b.client)) for b in browsers] == [1] * 5 + [0] * 2
    assert await device_rows(settings) == 5  # DEVICES_MINTED_PER_WINDOW


@BOTH_DATABASES
async def test_a_user_keeps_the_most_recently_used_devices(
    tmp_path: Any, database: str, cheap_hashing: None
) -> None:
    settings = settings_at_head(
        tmp_path, database, DEVICES_MINTED_PER_WINDOW=100, DEVICES_PER_USER=3
    )
    app = create_app(settings)
    async with app.test_app():
        await add_user(app)
        browsers = [await owners_browser(app) for _ in range(5)]
        await lock(app)

        statuses = [(await AuthActions(b).login()).status_code for b in browsers]

    assert await device_rows(settings) == 3
    assert statuses == [429, 429, 302, 302, 302]


# Trusting a new device with a one-time code


async def make_code(client: TestClientProtocol) -> str:
    """Press "Trust a new device" on the sessions page; the code the page shows."""
    token = await csrf_token(client, "/account/sessions")
    response = await client.post("/account/devices/new", form={"csrf_token": token})
    assert response.status_code == 200
    found = CODE.search(await body(response))
    assert found
    return found.group(1)


async def enter_code(client: TestClientProtocol, code: str) -> Response:
    token = await csrf_token(client, "/login/device")
    return await client.post("/login/device", form={"code": code, "csrf_token": token})


@BOTH_DATABASES
async def test_a_code_from_a_logged_in_browser_lets_a_new_browser_in_while_locked(
    app: Quart, auth: AuthActions
) -> None:
    assert (await auth.login()).status_code == 302  # the owner's phone, logged in
    await lock(app)
    code = await make_code(auth.client)
    laptop = app.test_client()

    entered = await enter_code(laptop, code)
    laptops_login = await AuthActions(laptop).login()
    strangers_login = await AuthActions(app.test_client()).login()

    assert entered.status_code == 302
    assert entered.headers["Location"] == "/login"
    assert any("device-" in h for h in entered.headers.getlist("Set-Cookie"))
    assert laptops_login.status_code == 302
    assert strangers_login.status_code == 429


async def test_a_code_works_once(app: Quart, auth: AuthActions) -> None:
    assert (await auth.login()).status_code == 302
    code = await make_code(auth.client)
    assert (await enter_code(app.test_client(), code)).status_code == 302

    again = await enter_code(app.test_client(), code)

    assert again.status_code == 400
    assert "That code is wrong, used or expired." in await body(again)


async def test_a_new_code_replaces_the_last_one(app: Quart, auth: AuthActions) -> None:
    assert (await auth.login()).status_code == 302
    first = await make_code(auth.client)
    second = await make_code(auth.client)

    assert (await enter_code(app.test_client(), first)).status_code == 400
    assert (
        await enter_code(app.test_client(), second.lower().replace("-", " "))
    ).status_code == 302


async def test_an_expired_code_is_refused(
    app: Quart, auth: AuthActions, settings: dict[str, Any]
) -> None:
    assert (await auth.login()).status_code == 302
    code = await make_code(auth.client)
    await aquery(settings, "UPDATE device_codes SET expires_at = expires_at - 601")

    response = await enter_code(app.test_client(), code)

    assert response.status_code == 400
    assert await aquery(settings, "SELECT count(*) FROM device_codes") == [(0,)]


@pytest.mark.parametrize(
    "code",
    ["", "ABCD-EFGH-JKLM", "not a code", "x" * 33, "ABCD\x00EFGH", "ABCD-EFGH-JKL0"],
    ids=["empty", "wrong", "words", "too-long", "nul", "bad-letter"],
)
async def test_bad_codes_get_a_clear_400(app: Quart, auth: AuthActions, code: str) -> None:
    response = await enter_code(app.test_client(), code)

    assert response.status_code == 400
    assert "There is a problem" in await body(response)


@BOTH_DATABASES
async def test_a_code_past_the_mint_cap_is_kept_for_later(
    app: Quart, auth: AuthActions, settings: dict[str, Any]
) -> None:
    assert (await auth.login()).status_code == 302
    for _ in range(4):  # with auth's, alice's five new devices this window
        assert (await AuthActions(app.test_client()).login()).status_code == 302
    code = await make_code(auth.client)
    refused = await enter_code(app.test_client(), code)
    await aquery(settings, "UPDATE devices SET created_at = created_at - 901")

    later = await enter_code(app.test_client(), code)

    assert refused.status_code == 429
    assert "too many new devices" in await body(refused)
    assert later.status_code == 302


async def test_only_a_logged_in_user_can_make_a_code(app: Quart, auth: AuthActions) -> None:
    stranger = app.test_client()
    token = await csrf_token(stranger, "/login")

    response = await stranger.post("/account/devices/new", form={"csrf_token": token})

    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")


async def test_making_a_code_needs_the_csrf_token(app: Quart, auth: AuthActions) -> None:
    assert (await auth.login()).status_code == 302

    response = await auth.client.post("/account/devices/new", form={})

    assert response.status_code == 400


async def test_entering_a_code_needs_the_csrf_token(app: Quart, auth: AuthActions) -> None:
    assert (await auth.login()).status_code == 302
    code = await make_code(auth.client)
    laptop = app.test_client()
    await laptop.get("/login/device")

    forged = await laptop.post("/login/device", form={"code": code})

    assert forged.status_code == 400
    assert device_cookies(laptop) == []
    assert (await enter_code(laptop, code)).status_code == 302  # the code was not used up


GUESSER = ("198.51.100.7", 40000)
NEIGHBOUR = ("203.0.113.8", 40000)
WRONG_CODES = ["ABCD-EFGH-JKLM", "BCDE-FGHJ-KLMN", "CDEF-GHJK-LMNP", "DEFG-HJKL-MNPQ"]


async def enter_code_from(
    client: TestClientProtocol, code: str, peer: tuple[str, int]
) -> Response:
    """Enter ``code`` on the real form from the address ``peer``."""
    token = await csrf_token(client, "/login/device")
    form = {"code": code, "csrf_token": token}
    return await client.post("/login/device", form=form, scope_base={"client": peer})


async def test_wrong_codes_from_one_address_are_throttled_and_others_are_not(
    tmp_path: Any, database: str, cheap_hashing: None
) -> None:
    settings = settings_at_head(tmp_path, database, LOGIN_FAILURES_PER_ADDRESS=3)
    app = create_app(settings)
    async with app.test_app():
        await add_user(app)
        owner = AuthActions(app.test_client())
        assert (await owner.login()).status_code == 302
        code = await make_code(owner.client)
        guesser = app.test_client()

        wrong = [await enter_code_from(guesser, guess, GUESSER) for guess in WRONG_CODES]
        right = await enter_code_from(guesser, code, GUESSER)
        trusted_by_the_code = device_cookies(guesser)
        # The guesser's password logins are counted apart: its lockout is the codes'.
        token = await csrf_token(guesser)
        login = await guesser.post(
            "/login",
            form={"username": "alice", "password": PASSWORD, "csrf_token": token},
            scope_base={"client": GUESSER},
        )
        neighbour = await enter_code_from(app.test_client(), code, NEIGHBOUR)

    assert [response.status_code for response in wrong] == [400, 400, 400, 429]
    assert right.status_code == 429
    assert int(right.headers["Retry-After"]) > 0
    page = await body(right)
    assert "too many wrong codes" in page
    assert "Try again in " in page
    assert trusted_by_the_code == []
    assert login.status_code == 302
    # The right code was refused unused: from another network it still works.
    assert neighbour.status_code == 302
    assert neighbour.headers["Location"] == "/login"


async def test_the_sessions_page_counts_trusted_devices(app: Quart, auth: AuthActions) -> None:
    await owners_browser(app)
    assert (await auth.login()).status_code == 302

    page = await body(await auth.client.get("/account/sessions"))

    assert re.search(r"2 browsers you signed in with\s+are trusted", page)
    assert "Trust a new device" in page


# users unlock


async def test_users_unlock_lets_a_new_browser_in_at_once(
    app: Quart, auth: AuthActions, runner: Any
) -> None:
    await lock(app)

    result = await invoke(runner, "users", "unlock", "ALICE")

    assert (result.exit_code, result.stdout) == (
        0,
        "unlocked 'alice'; cleared 1 throttle counter(s)\n",
    )
    assert (await AuthActions(app.test_client()).login()).status_code == 302


async def test_users_unlock_refuses_an_unknown_user(app: Quart, runner: Any) -> None:
    result = await invoke(runner, "users", "unlock", "nobody")

    assert (result.exit_code, result.stderr) == (1, "Error: no user named 'nobody'\n")


async def login_from(client: TestClientProtocol, address: str) -> Response:
    """Log in as alice from a browser at ``address``."""
    where = {"client": (address, 40000)}
    page = await body(await client.get("/login", scope_base=where))
    field = CSRF_INPUT.search(page)
    token = VALUE.search(field.group(0)) if field else None
    assert token
    form = {"username": "alice", "password": PASSWORD, "csrf_token": token.group(1)}
    return await client.post("/login", form=form, scope_base=where)


@BOTH_DATABASES
@pytest.mark.parametrize("one_address", [False, True], ids=["many-addresses", "one-address"])
async def test_parallel_logins_of_one_user_mint_no_more_than_the_cap(
    tmp_path: Any, database: str, one_address: bool
) -> None:
    # Room for every login at once, so that their transactions overlap.
    settings = settings_at_head(
        tmp_path,
        database,
        HASHING_CONCURRENCY=4,
        HASHING_QUEUE=100,
        HASHING_PLACES_PER_CLIENT=100,
        LOGIN_FAILURES_PER_USER=100,
    )
    app = create_app(settings)
    async with app.test_app():
        await add_user(app)
        browsers = [app.test_client() for _ in range(12)]
        # From one address too: throttle.succeeded once locked the name's counter
        # before the address's, the reverse of attempt(), and parallel right-password
        # logins from one address deadlocked on PostgreSQL (a 503 each time).
        responses = await asyncio.gather(
            *(
                login_from(browser, "198.51.100.7" if one_address else f"198.51.100.{n}")
                for n, browser in enumerate(browsers)
            )
        )

    assert [r.status_code for r in responses] == [302] * 12
    assert sum(len(device_cookies(browser)) for browser in browsers) == 5
    assert await device_rows(settings) == 5


async def test_a_device_cookie_named_under_a_fallback_key_is_still_trusted(
    tmp_path: Any, database: str, cheap_hashing: None
) -> None:
    settings = settings_at_head(tmp_path, database)
    old = create_app(settings)
    async with old.test_app():
        await add_user(old)
        owner = await owners_browser(old)
    rotated = create_app(
        {
            **settings,
            "SECRET_KEY": "the-rotated-secret-key-0123456789abcdefghij",
            "SECRET_KEY_FALLBACKS": [TEST_SECRET_KEY],
        }
    )
    async with rotated.test_app():
        await lock(rotated)
        browser = copy_device_cookie(rotated, owner)

        response = await AuthActions(browser).login()

    assert response.status_code == 302
    # Renewed under the new key's name.
    assert devices.cookie_name(auth_settings.of(rotated), "alice") in {
        c.name for c in device_cookies(browser)
    }


@pytest.mark.parametrize(
    ("send", "status"),
    [
        ({"json": {"code": "ABCD-EFGH-JKLM"}}, 415),
        ({"form": [("code", "ABCD-EFGH-JKLM"), ("code", "ABCD-EFGH-JKLM")]}, 400),
        ({"files": {"code": FileStorage(io.BytesIO(b"ABCD"), filename="code.txt")}}, 400),
    ],
    ids=["json", "repeated", "file"],
)
async def test_hostile_code_forms_get_a_clear_4xx(
    app: Quart, send: dict[str, Any], status: int
) -> None:
    client = app.test_client()
    token = await csrf_token(client, "/login/device")
    kwargs = dict(send)
    if "form" in kwargs:
        kwargs["form"] = [*kwargs["form"], ("csrf_token", token)]
    elif "files" in kwargs:
        kwargs["form"] = {"csrf_token": token}

    response = await client.post("/login/device", headers={"X-CSRFToken": token}, **kwargs)

    assert response.status_code == status


@BOTH_DATABASES
async def test_users_unlock_also_clears_the_users_own_devices_counts(
    app: Quart, auth: AuthActions, runner: Any
) -> None:
    owner = await owners_browser(app)
    for _ in range(5):  # the owner's own typos lock the device
        assert (await AuthActions(owner).login("alice", WRONG)).status_code == 200
    await lock(app)
    assert (await AuthActions(owner).login()).status_code == 429

    result = await invoke(runner, "users", "unlock", "alice")

    assert result.stdout == "unlocked 'alice'; cleared 2 throttle counter(s)\n"
    assert (await AuthActions(owner).login()).status_code == 302
