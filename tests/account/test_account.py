"""Tests for the account pages: /account/password and /account/sessions."""

from __future__ import annotations

import asyncio
import json
import re
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pytest
from argon2 import PasswordHasher
from argon2.exceptions import VerificationError
from quart import Quart
from quart.wrappers import Response

from quartapp.account import login_list
from quartapp.auth import ratings, users
from quartapp.auth import settings as auth_settings
from quartapp.web.display import browser_summary, utc_minute
from tests.conftest import (
    BOTH_DATABASES,
    PASSWORD,
    AuthActions,
    add_user,
    aquery,
    astored_hash,
    body,
    cookie_value,
    csrf_token,
    login_count,
    replay,
)
from tests.support.settings import auth as load_auth_settings

AUTH = load_auth_settings()

# The tests marked BOTH_DATABASES are those whose outcome can depend on the database
# (the rule: tests/conftest.py); the rest run on SQLite alone, among them the wrong
# current passwords, whose counters' statements are tested in tests/auth/test_throttle.py.

if TYPE_CHECKING:
    # Only for annotations: a Test* class at module level would be collected by pytest.
    from quart.typing import TestClientProtocol

NEW_PASSWORD = "a brand new passphrase, also long"
WRONG = "not the password at all, sorry"
CHANGED = "Your password was changed. 1 other session was ended."
WRONG_CURRENT = "Your current password is wrong."
REPEATS = "Repeats like &#34;abcabcabc&#34; are only slightly harder to guess than &#34;abc&#34;."
END_ID = re.compile(r'href="/account/sessions/end\?login=([0-9a-f]+)"')
CHROME_LINUX = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
FIREFOX_WINDOWS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0"
)
SAFARI_IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
)


def verifies(password_hash: str, password: str) -> bool:
    try:
        return PasswordHasher().verify(password_hash, password)
    except VerificationError:
        return False


async def change_password(
    client: TestClientProtocol,
    current: str = PASSWORD,
    new: str = NEW_PASSWORD,
    again: str | None = None,
) -> Response:
    """Send the change-password form as the page's browser would, CSRF token included."""
    form = {
        "current_password": current,
        "new_password": new,
        "new_password2": new if again is None else again,
        "csrf_token": await csrf_token(client, "/account/password"),
    }
    return await client.post("/account/password", form=form)


async def login_from(client: TestClientProtocol, user_agent: str) -> Response:
    """Log in as alice from a browser that names itself ``user_agent``."""
    form = {
        "username": "alice",
        "password": PASSWORD,
        "csrf_token": await csrf_token(client, "/login"),
    }
    return await client.post("/login", form=form, headers={"User-Agent": user_agent})


async def second_device(app: Quart, user_agent: str = FIREFOX_WINDOWS) -> TestClientProtocol:
    """Another browser logged in as alice."""
    other = app.test_client()
    assert (await login_from(other, user_agent)).status_code == 302
    return other


def audit_events(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [
        json.loads(record.getMessage())
        for record in caplog.records
        if record.name == "quartapp.audit"
    ]


async def end_ids(client: TestClientProtocol) -> list[str]:
    """The ids of the "End this session" links on the sessions page."""
    return END_ID.findall(await body(await client.get("/account/sessions")))


async def end_session(client: TestClientProtocol, login: str) -> Response:
    """Post the confirmation form, with the token of the page that asks (the sessions
    page's, for an id no confirmation page would show)."""
    page = f"/account/sessions/end?login={login}"
    if (await client.get(page)).status_code != 200:
        page = "/account/sessions"
    token = await csrf_token(client, page)
    return await client.post("/account/sessions/end", form={"login": login, "csrf_token": token})


async def is_logged_in(client: TestClientProtocol) -> bool:
    return (await client.get("/hello")).status_code == 200


# browser_summary


@pytest.mark.parametrize(
    ("user_agent", "summary"),
    [
        (CHROME_LINUX, "Chrome on Linux"),
        (FIREFOX_WINDOWS, "Firefox on Windows"),
        (SAFARI_IPHONE, "Safari on iPhone"),
        (
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 "
            "(KHTML, like Gecko) Version/17.5 Safari/605.1.15",
            "Safari on macOS",
        ),
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
            "Edge on Windows",
        ),
        (
            "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/131.0.0.0 Mobile Safari/537.36",
            "Chrome on Android",
        ),
        ("curl/8.5.0", "curl"),
        ("", "Unknown browser"),
        (None, "Unknown browser"),
        ("something (X11; Linux)", "Unknown browser on Linux"),
    ],
)
def test_browser_summary_names_well_known_browsers(user_agent: str | None, summary: str) -> None:
    assert browser_summary(user_agent) == summary


def test_utc_minute_drops_seconds_from_either_kind_of_time() -> None:
    expected = datetime(2026, 11, 22, 0, 43, tzinfo=UTC)

    assert utc_minute(expected.timestamp() + 59.9) == expected
    assert utc_minute(datetime(2026, 11, 22, 0, 43, 12)) == expected


async def test_concurrent_ratings_each_use_their_own_username() -> None:
    # zxcvbn keeps the username in a module-level dictionary during a rating.
    def rate(username: str) -> asyncio.Future[None]:
        return asyncio.ensure_future(
            users.vet_password("grozbultarkenvy1", AUTH, username=username)
        )

    # As many as the rating line holds: the one running and those waiting.
    names = (["grozbultarkenvy", "someone"] * 4)[: ratings.RATING_QUEUE + 1]
    results = await asyncio.gather(*(rate(name) for name in names), return_exceptions=True)

    assert [isinstance(result, users.AccountError) for result in results] == [
        name == "grozbultarkenvy" for name in names
    ]


# /account/password


@pytest.mark.parametrize("path", ["/account/password", "/account/sessions"])
async def test_account_pages_need_a_login(client: TestClientProtocol, path: str) -> None:
    response = await client.get(path)

    assert response.status_code == 302
    assert response.headers["Location"] == f"/login?next={path}"


async def test_password_page_has_the_three_fields_and_a_csrf_token(auth: AuthActions) -> None:
    await auth.login()

    page = await body(await auth.client.get("/account/password"))

    for name, autocomplete in (
        ("current_password", "current-password"),
        ("new_password", "new-password"),
        ("new_password2", "new-password"),
    ):
        assert re.search(
            rf'<input[^>]*autocomplete="{autocomplete}"[^>]*name="{name}"[^>]*type="password"',
            page,
        ), name
    assert 'name="csrf_token"' in page
    assert 'value="Change password"' in page
    assert "Use at least 15 characters." in page


async def test_wrong_current_password_is_refused_on_the_field(
    auth: AuthActions, settings: dict[str, Any]
) -> None:
    await auth.login()
    original = await astored_hash(settings)

    response = await change_password(auth.client, current=WRONG)

    page = await body(response)
    assert response.status_code == 200
    assert "There is a problem" in page
    assert f'<a href="#current_password">{WRONG_CURRENT}</a>' in page
    assert 'id="current_password-errors"' in page
    assert "<title>Error: Change your password · quartapp</title>" in page
    assert await astored_hash(settings) == original


async def test_wrong_current_passwords_count_toward_the_login_throttle(
    auth: AuthActions, settings: dict[str, Any]
) -> None:
    await auth.login()
    for _ in range(5):
        assert (await change_password(auth.client, current=WRONG)).status_code == 200

    response = await change_password(auth.client)

    page = await body(response)
    assert response.status_code == 429
    assert "There were too many wrong passwords." in page
    assert 0 < int(response.headers["Retry-After"]) <= 15 * 60
    assert verifies(await astored_hash(settings), PASSWORD)
    # The same counter as the login form's: this browser cannot log in again either.
    await auth.logout()
    assert (await auth.login()).status_code == 429


@pytest.mark.parametrize(
    ("new", "again", "message"),
    [
        ("passwordpassword", None, f"The password is too easy to guess: {REPEATS}"),
        ("alicealicealice", None, f"The password is too easy to guess: {REPEATS}"),
        ("k7#Qv9!mZ2@wL4", None, "The password is shorter than 15 characters."),
        ("x" * 1025, None, "Field cannot be longer than 1024 characters."),
        (NEW_PASSWORD, NEW_PASSWORD + "!", "Enter the same new password in both boxes."),
    ],
    ids=["common", "username", "too-short", "too-long", "mismatch"],
)
async def test_new_password_against_the_policy_is_refused(
    auth: AuthActions, settings: dict[str, Any], new: str, again: str | None, message: str
) -> None:
    await auth.login()
    original = await astored_hash(settings)

    response = await change_password(auth.client, new=new, again=again)

    page = await body(response)
    assert response.status_code == 200
    assert "There is a problem" in page
    assert message in page
    assert await astored_hash(settings) == original
    assert await is_logged_in(auth.client)


@pytest.fixture
def forty_characters_at_least(settings: dict[str, Any]) -> None:
    settings["PASSWORD_MIN_LENGTH"] = 40


async def test_policy_is_read_from_the_config(
    forty_characters_at_least: None, app: Quart, client: TestClientProtocol
) -> None:
    # An account made under the policy: its password is long enough for it.
    current = "a current passphrase long enough for forty characters"
    await add_user(app, password=current)
    auth = AuthActions(client)
    await auth.login(password=current)

    page = await body(await change_password(auth.client, current=current))

    assert "The password is shorter than 40 characters." in page
    assert "Use at least 40 characters." in page


async def test_new_password_of_the_wrong_length_costs_no_attempt(
    auth: AuthActions, settings: dict[str, Any]
) -> None:
    await auth.login()
    counters = "SELECT scope, key, attempts FROM throttle_counters ORDER BY scope, key"
    before = await aquery(settings, counters)

    for _ in range(6):
        await change_password(auth.client, current=WRONG, new="k7#Qv9!mZ2@wL4")

    assert await aquery(settings, counters) == before
    assert (await change_password(auth.client)).status_code == 302


async def test_wrong_current_password_is_not_rated(auth: AuthActions) -> None:
    await auth.login()
    before = ratings.RATINGS.started

    page = await body(await change_password(auth.client, current=WRONG, new="passwordpassword"))

    assert WRONG_CURRENT in page
    assert "too easy to guess" not in page
    assert ratings.RATINGS.started == before


async def test_throttled_password_change_is_not_rated(auth: AuthActions) -> None:
    await auth.login()
    before = ratings.RATINGS.started
    for _ in range(5):
        await change_password(auth.client, current=WRONG)

    response = await change_password(auth.client, new="passwordpassword")

    assert response.status_code == 429
    assert ratings.RATINGS.started == before


async def test_weak_new_password_is_rated_once_the_current_one_is_right(
    auth: AuthActions, settings: dict[str, Any]
) -> None:
    await auth.login()
    before = ratings.RATINGS.started

    # More than the 5 attempts a lockout needs: a right current password counts none.
    for _ in range(6):
        page = await body(await change_password(auth.client, new="passwordpassword"))
        assert f"The password is too easy to guess: {REPEATS}" in page

    assert ratings.RATINGS.started == before + 6
    assert (await change_password(auth.client)).status_code == 302
    assert verifies(await astored_hash(settings), NEW_PASSWORD)


async def test_full_rating_line_answers_503_with_retry_after(
    auth: AuthActions, settings: dict[str, Any]
) -> None:
    await auth.login()
    original = await astored_hash(settings)
    gate = ratings.gate()
    async with gate.lock:
        # Held here, the lock stalls every rating: these fill the running place and
        # the line behind it.
        waiting = [
            asyncio.ensure_future(users.vet_password(NEW_PASSWORD, AUTH))
            for _ in range(1 + ratings.RATING_QUEUE)
        ]
        await asyncio.sleep(0)

        response = await change_password(auth.client)
    await asyncio.gather(*waiting)

    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    assert "Temporarily unavailable" in await body(response)
    assert await astored_hash(settings) == original


async def test_password_change_without_csrf_token_is_refused(
    auth: AuthActions, settings: dict[str, Any]
) -> None:
    await auth.login()
    original = await astored_hash(settings)
    form = {"current_password": PASSWORD, "new_password": NEW_PASSWORD}

    response = await auth.client.post(
        "/account/password", form={**form, "new_password2": NEW_PASSWORD}
    )

    assert response.status_code == 400
    assert await astored_hash(settings) == original


async def test_password_change_as_json_is_refused(auth: AuthActions) -> None:
    await auth.login()

    response = await auth.client.post("/account/password", json={"new_password": NEW_PASSWORD})

    assert response.status_code == 400  # no CSRF token in a JSON body


@BOTH_DATABASES
async def test_password_change_keeps_this_login_with_a_new_token(
    app: Quart, auth: AuthActions, settings: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    await auth.login()
    old_cookie = cookie_value(auth.client)
    other = await second_device(app)
    assert await login_count(settings) == 2

    with caplog.at_level("INFO", logger="quartapp.audit"):
        response = await change_password(auth.client)

    assert response.status_code == 302
    assert response.headers["Location"] == "/account/sessions"
    assert CHANGED in await body(await auth.client.get("/account/sessions"))
    assert await is_logged_in(auth.client)
    assert cookie_value(auth.client) != old_cookie
    # The other device and a copy of this one's old cookie are both logged out.
    assert not await is_logged_in(other)
    assert not await is_logged_in(replay(app, old_cookie))
    assert await login_count(settings) == 1
    assert verifies(await astored_hash(settings), NEW_PASSWORD)
    [changed] = [e for e in audit_events(caplog) if e["event"] == "password_changed"]
    assert (changed["user"], changed["sessions_ended"]) == ("alice", 1)
    # And the new password is the one that logs in.
    fresh = AuthActions(app.test_client())
    assert (await fresh.login(password=PASSWORD)).status_code == 200
    assert (await fresh.login(password=NEW_PASSWORD)).status_code == 302


@BOTH_DATABASES
async def test_password_change_keeps_the_logins_start_and_remember_me(
    auth: AuthActions, settings: dict[str, Any]
) -> None:
    await auth.login(remember=True)
    before = await aquery(settings, "SELECT created_at, expires_at, remember FROM logins")

    await change_password(auth.client)

    assert await aquery(settings, "SELECT created_at, expires_at, remember FROM logins") == before


async def test_password_change_gives_the_session_a_new_csrf_token(auth: AuthActions) -> None:
    await auth.login()
    before = await csrf_token(auth.client, "/account/password")
    form = {
        "current_password": PASSWORD,
        "new_password": NEW_PASSWORD,
        "new_password2": NEW_PASSWORD,
        "csrf_token": before,
    }
    assert (await auth.client.post("/account/password", form=form)).status_code == 302

    # A token that pages showed before the change no longer passes; the new one does.
    refused = await auth.client.post("/logout", form={"csrf_token": before})
    assert refused.status_code == 400
    assert await is_logged_in(auth.client)
    after = await csrf_token(auth.client, "/logout")
    assert after != before
    assert (await auth.client.post("/logout", form={"csrf_token": after})).status_code == 302


# /account/sessions


@BOTH_DATABASES
async def test_sessions_page_lists_both_logins_and_marks_this_device(
    app: Quart, auth: AuthActions
) -> None:
    await login_from(auth.client, CHROME_LINUX)
    await second_device(app)

    response = await auth.client.get("/account/sessions")

    page = await body(response)
    assert response.status_code == 200
    assert page.count('<h2 class="session-title">') == 2
    assert 'Chrome on Linux <span class="session-badge">This device</span>' in page
    assert "Firefox on Windows</h2>" in page
    assert page.count("This device") == 1
    assert page.count("End this session") == 1
    assert "Log out everywhere else" in page
    assert 'href="/account/password"' in page
    assert "&lt;local&gt;" in page  # the test client's address
    assert re.search(r'<time datetime="\d{4}-\d\d-\d\dT\d\d:\d\dZ">', page)


async def test_sessions_page_says_which_logins_are_remembered(
    app: Quart, auth: AuthActions
) -> None:
    await auth.login(remember=True)

    page = await body(await auth.client.get("/account/sessions"))

    assert "Yes, for 30 days" in page
    assert "End this session" not in page
    assert "Log out everywhere else" not in page


@BOTH_DATABASES
async def test_sessions_page_leaves_out_expired_logins(
    app: Quart, auth: AuthActions, settings: dict[str, Any]
) -> None:
    await auth.login()
    other = await second_device(app)
    assert await is_logged_in(other)
    # The other login went idle an hour ago (the idle limit is 30 minutes).
    await aquery(
        settings,
        "UPDATE logins SET last_seen = last_seen - 3600 WHERE user_agent LIKE '%Firefox%'",
    )

    page = await body(await auth.client.get("/account/sessions"))

    assert "Firefox" not in page
    assert await end_ids(auth.client) == []


async def test_session_ids_on_the_page_are_not_the_row_ids(
    app: Quart, auth: AuthActions, settings: dict[str, Any]
) -> None:
    await auth.login()
    await second_device(app)

    page = await body(await auth.client.get("/account/sessions"))

    for (login_id,) in await aquery(settings, "SELECT id FROM logins"):
        assert login_id[:16] not in page


@BOTH_DATABASES
async def test_ending_another_session_logs_that_device_out(
    app: Quart, auth: AuthActions, settings: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    await auth.login()
    other = await second_device(app)
    [other_id] = await end_ids(auth.client)

    with caplog.at_level("INFO", logger="quartapp.audit"):
        response = await end_session(auth.client, other_id)

    assert response.status_code == 302
    assert response.headers["Location"] == "/account/sessions"
    assert "That session was ended." in await body(await auth.client.get("/account/sessions"))
    assert not await is_logged_in(other)
    assert await is_logged_in(auth.client)
    assert await login_count(settings) == 1
    [event] = [e for e in audit_events(caplog) if e["event"].startswith("session")]
    assert (event["event"], event["user"]) == ("session_ended", "alice")


@BOTH_DATABASES
async def test_ending_a_session_twice_is_not_found(app: Quart, auth: AuthActions) -> None:
    await auth.login()
    await second_device(app)
    [other_id] = await end_ids(auth.client)
    await end_session(auth.client, other_id)

    assert (await end_session(auth.client, other_id)).status_code == 404


@BOTH_DATABASES
async def test_ending_another_users_login_is_not_found_and_does_nothing(
    app: Quart, auth: AuthActions, settings: dict[str, Any]
) -> None:
    await add_user(app, "bob")
    bob = AuthActions(app.test_client())
    await bob.login("bob")
    await second_device(app)  # a second login of alice's, so alice's page has an id
    await auth.login()
    [alice_other] = await end_ids(auth.client)
    # bob's second browser, so bob's page offers an id of his own to end.
    bob_other = AuthActions(app.test_client())
    await bob_other.login("bob")
    [bob_id] = await end_ids(bob.client)

    response = await end_session(auth.client, bob_id)

    assert response.status_code == 404
    assert await login_count(settings) == 4
    assert await is_logged_in(bob_other.client)
    # And the other way round: bob cannot end alice's login with the id alice sees.
    assert (await end_session(bob.client, alice_other)).status_code == 404
    assert await login_count(settings) == 4


async def test_this_devices_own_id_cannot_be_ended_here(
    app: Quart, auth: AuthActions, settings: dict[str, Any]
) -> None:
    await auth.login()
    [(login_id,)] = await aquery(settings, "SELECT id FROM logins")
    own = login_list.public_id(auth_settings.of(app), login_id)

    assert (await end_session(auth.client, own)).status_code == 404
    assert await is_logged_in(auth.client)


@pytest.mark.parametrize(
    "login",
    ["", "not-hex", "0" * 31, "0" * 33, "\x00" * 32],
    ids=["empty", "not-hex", "short", "long", "nul"],
)
async def test_malformed_session_id_is_a_bad_request(auth: AuthActions, login: str) -> None:
    await auth.login()

    response = await end_session(auth.client, login)

    assert response.status_code == 400
    assert await is_logged_in(auth.client)


async def test_ending_a_session_without_csrf_token_is_refused(
    app: Quart, auth: AuthActions
) -> None:
    await auth.login()
    other = await second_device(app)
    [other_id] = await end_ids(auth.client)

    response = await auth.client.post("/account/sessions/end", form={"login": other_id})

    assert response.status_code == 400
    assert await is_logged_in(other)


@pytest.mark.parametrize(
    ("path", "status"), [("/account/sessions/end", 302), ("/account/sessions/end-others", 200)]
)
async def test_expired_end_forms_link_back_to_their_page(
    app: Quart, auth: AuthActions, path: str, status: int
) -> None:
    """The expired form's link opens the list (one login's) or the confirmation (all)."""
    await auth.login()
    other = await second_device(app)

    refused = await auth.client.post(path, form={"csrf_token": "expired"})
    again = await auth.client.get(path)

    assert refused.status_code == 400
    assert f'href="{path}"' in await body(refused)
    assert again.status_code == status
    if status == 302:
        assert again.headers["Location"] == "/account/sessions"
    assert await is_logged_in(other)


@BOTH_DATABASES
async def test_log_out_everywhere_else_ends_every_other_login(
    app: Quart, auth: AuthActions, settings: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    await auth.login()
    others = [await second_device(app), await second_device(app, SAFARI_IPHONE)]
    token = await csrf_token(auth.client, "/account/sessions/end-others")

    with caplog.at_level("INFO", logger="quartapp.audit"):
        response = await auth.client.post(
            "/account/sessions/end-others", form={"csrf_token": token}
        )

    assert response.status_code == 302
    page = await body(await auth.client.get("/account/sessions"))
    assert "2 other sessions were ended." in page
    assert [await is_logged_in(other) for other in others] == [False, False]
    assert await is_logged_in(auth.client)
    assert await login_count(settings) == 1
    [event] = [e for e in audit_events(caplog) if e["event"] == "sessions_revoked"]
    assert (event["user"], event["sessions_ended"]) == ("alice", 2)


async def test_nav_links_to_the_account_only_when_logged_in(
    client: TestClientProtocol, auth: AuthActions
) -> None:
    assert 'href="/account"' not in await body(await client.get("/"))

    await auth.login()

    page = await body(await client.get("/"))
    assert '<a href="/account">Account</a>' in page


# A device whose login was ended elsewhere is told why

ENDED_ELSEWHERE = (
    "You were logged out because this session was ended from another device or the "
    "password changed."
)


async def end_from_the_sessions_page(auth: AuthActions, _other: TestClientProtocol) -> None:
    [other_id] = await end_ids(auth.client)
    assert (await end_session(auth.client, other_id)).status_code == 302


async def log_out_everywhere_else(auth: AuthActions, _other: TestClientProtocol) -> None:
    token = await csrf_token(auth.client, "/account/sessions/end-others")
    response = await auth.client.post("/account/sessions/end-others", form={"csrf_token": token})
    assert response.status_code == 302


async def change_the_password(auth: AuthActions, _other: TestClientProtocol) -> None:
    assert (await change_password(auth.client)).status_code == 302


@pytest.mark.parametrize(
    "end", [end_from_the_sessions_page, log_out_everywhere_else, change_the_password]
)
async def test_a_device_logged_out_from_elsewhere_is_told_why(
    app: Quart, auth: AuthActions, end: Any
) -> None:
    await auth.login()
    other = await second_device(app)
    await other.get("/hello")  # the login's own flash is read

    await end(auth, other)
    response = await other.get("/hello")
    page = await body(await other.get(response.headers["Location"]))

    assert response.status_code == 302
    assert response.headers["Location"] == "/login?next=/hello"
    assert ENDED_ELSEWHERE in page
    # Told once, and instead of the anonymous visitor's message.
    assert "You need to login first." not in page
    assert page.count(ENDED_ELSEWHERE) == 1
    # The cookie no longer names the login: the next page is an anonymous visitor's.
    again = await other.get("/hello")
    assert "You need to login first." in await body(await other.get(again.headers["Location"]))


async def test_a_device_whose_login_ended_is_told_on_a_public_page_too(
    app: Quart, auth: AuthActions
) -> None:
    await auth.login()
    other = await second_device(app)
    await other.get("/hello")
    await log_out_everywhere_else(auth, other)

    page = await body(await other.get("/welcome"))

    assert ENDED_ELSEWHERE in page
    assert "Signed in as" not in page


async def test_a_visitor_who_never_signed_in_gets_the_tutorials_message(
    client: TestClientProtocol,
) -> None:
    response = await client.get("/hello")
    page = await body(await client.get(response.headers["Location"]))

    assert "You need to login first." in page
    assert "ended from another device" not in page


@BOTH_DATABASES
async def test_a_login_past_its_limit_and_pruned_is_told_it_expired(auth: AuthActions) -> None:
    await auth.login()
    await auth.client.get("/hello")
    # A cookie whose row went with a prune after its 12-hour limit: a token the table
    # does not know, and a limit in the past.
    async with auth.client.session_transaction() as session:
        session["login"] = "a token whose row was pruned"
        session["login_until"] = int(time.time()) - 60

    response = await auth.client.get("/hello")
    page = await body(await auth.client.get(response.headers["Location"]))

    assert "Your session has expired. Please sign in again." in page
    assert ENDED_ELSEWHERE not in page


async def test_password_page_marks_each_box_for_a_show_button(auth: AuthActions) -> None:
    await auth.login()

    page = await body(await auth.client.get("/account/password"))

    for name, words in (
        ("current_password", "current password"),
        ("new_password", "new password"),
        ("new_password2", "new password again"),
    ):
        field = re.search(rf'<input[^>]*name="{name}"[^>]*>', page)
        assert field, name
        assert 'class="password-input"' in field.group(0)
        assert f'data-show-name="{words}"' in field.group(0)
    assert '<script src="/static/login.js" defer></script>' in page


# Ending logins asks first: a confirmation page (GET) says what will end, and its form
# posts to the same endpoint as before, with the page's CSRF token.


async def test_the_end_session_page_names_the_login_it_ends(app: Quart, auth: AuthActions) -> None:
    await auth.login()
    other = await second_device(app, SAFARI_IPHONE)
    [other_id] = await end_ids(auth.client)

    response = await auth.client.get(f"/account/sessions/end?login={other_id}")

    page = await body(response)
    assert response.status_code == 200
    assert "<h1>End the session on Safari on iPhone?</h1>" in page
    assert "The sign-in on <strong>Safari on iPhone</strong>" in page
    assert '<form class="form confirm-form" method="post" action="/account/sessions/end">' in page
    assert f'<input name="login" type="hidden" value="{other_id}">' in page
    assert '<button type="submit" class="button-warning">End this session</button>' in page
    assert await is_logged_in(other)


@pytest.mark.parametrize("login", ["0" * 32, "not-an-id"])
async def test_the_end_session_page_is_404_for_a_login_not_shown(
    auth: AuthActions, login: str
) -> None:
    await auth.login()

    response = await auth.client.get(f"/account/sessions/end?login={login}")

    assert response.status_code == 404


async def test_this_login_has_no_end_session_page(
    app: Quart, auth: AuthActions, settings: dict[str, Any]
) -> None:
    """The page ends only other logins; this one logs out with the header's button."""
    await auth.login()
    [(row_id,)] = await aquery(settings, "SELECT id FROM logins")
    public = login_list.public_id(auth_settings.of(app), row_id)

    response = await auth.client.get(f"/account/sessions/end?login={public}")

    assert response.status_code == 404


async def test_the_sessions_page_links_to_the_confirmations(app: Quart, auth: AuthActions) -> None:
    await auth.login()
    await second_device(app)

    page = await body(await auth.client.get("/account/sessions"))

    assert 'href="/account/sessions/end-others">Log out everywhere else</a>' in page
    assert 'class="button-secondary button-warning-secondary"' in page
    assert '<form class="session-end"' not in page
    assert '<a href="/account">Back to your account</a>' in page


async def test_the_log_out_everywhere_else_page_lists_what_ends(
    app: Quart, auth: AuthActions
) -> None:
    await auth.login()
    others = [await second_device(app), await second_device(app, SAFARI_IPHONE)]

    page = await body(await auth.client.get("/account/sessions/end-others"))

    assert "<h1>Log out everywhere else?</h1>" in page
    assert "The sign-in on <strong>Firefox on Windows</strong>" in page
    assert "The sign-in on <strong>Safari on iPhone</strong>" in page
    assert "This device stays signed in" in page
    assert '<button type="submit" class="button-warning">Log out everywhere else</button>' in page
    assert [await is_logged_in(other) for other in others] == [True, True]


async def test_with_no_other_login_the_page_has_nothing_to_end(auth: AuthActions) -> None:
    await auth.login()

    page = await body(await auth.client.get("/account/sessions/end-others"))

    assert "there is no other session to end." in page
    assert "button-warning" not in page


async def test_log_out_everywhere_else_with_nothing_else_says_so(auth: AuthActions) -> None:
    await auth.login()
    token = await csrf_token(auth.client, "/account/sessions/end-others")

    response = await auth.client.post("/account/sessions/end-others", form={"csrf_token": token})

    assert response.headers["Location"] == "/account/sessions"
    page = await body(await auth.client.get("/account/sessions"))
    assert '<div class="notice notice-info" role="status">' in page
    assert "There were no other sessions to end." in page
    assert "everywhere else." not in page
    assert "were ended" not in page


async def test_log_out_everywhere_else_without_csrf_token_is_refused(
    app: Quart, auth: AuthActions
) -> None:
    await auth.login()
    other = await second_device(app)

    response = await auth.client.post("/account/sessions/end-others", form={})

    assert response.status_code == 400
    assert await is_logged_in(other)


async def test_a_password_change_with_no_other_login_says_only_that(auth: AuthActions) -> None:
    await auth.login()

    response = await change_password(auth.client)

    assert response.headers["Location"] == "/account/sessions"
    page = await body(await auth.client.get("/account/sessions"))
    assert "<p>Your password was changed.</p>" in page
    assert "ended" not in page.split("<main", 1)[1].split("</div>", 1)[0]
