"""The login flow: the auth blueprint, login_required, sessions and CSRF."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from http.cookies import SimpleCookie
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from quart import Quart

from quartapp import create_app
from quartapp.web.navigation import safe_next
from tests.conftest import (
    BOTH_DATABASES,
    PASSWORD,
    TEST_SECRET_KEY,
    AuthActions,
    add_user,
    aquery,
    body,
    both_databases_for,
    cookie_value,
    csrf_token,
    login_count,
    replay,
    settings_at_head,
)

# The tests marked BOTH_DATABASES are those whose outcome can depend on the database
# (the rule: tests/conftest.py): a login, its row read and ended. Names are lower-cased,
# passwords checked and pages made in Python; the rest run on SQLite alone.

if TYPE_CHECKING:
    # Only for annotations: a Test* class at module level would be collected by pytest.
    from quart.typing import TestClientProtocol

INVALID = "Invalid Credentials. Please try again."
# A token missing, or made for another session: retrying the same form cannot help.
NOT_VERIFIED = "The form could not be verified. Please try again."


def session_cookie(response: Any, name: str = "session") -> SimpleCookie:
    """The parsed Set-Cookie header of a response for the session cookie ``name``."""
    headers = [h for h in response.headers.getlist("Set-Cookie") if h.startswith(f"{name}=")]
    assert len(headers) == 1, headers
    cookie: SimpleCookie = SimpleCookie()
    cookie.load(headers[0])
    return cookie


async def test_login_page_has_form_with_csrf_and_novalidate(client: TestClientProtocol) -> None:
    response = await client.get("/login")

    page = await body(response)
    assert response.status_code == 200
    assert re.search(r"<form[^>]*novalidate", page)
    for field in ('name="username"', 'name="password"', 'name="remember_me"', 'name="csrf_token"'):
        assert field in page


@BOTH_DATABASES
async def test_login_redirects_to_hello_which_greets_user(auth: AuthActions) -> None:
    response = await auth.login()

    assert response.status_code == 302
    assert response.headers["Location"] == "/hello"
    hello = await auth.client.get("/hello")
    page = await body(hello)
    assert hello.status_code == 200
    assert "Hello, alice!" in page
    assert "You were signed in as alice." in page


async def test_login_username_is_case_insensitive(auth: AuthActions) -> None:
    response = await auth.login("ALICE")

    assert response.headers["Location"] == "/hello"


async def test_wrong_password_rerenders_with_message(auth: AuthActions) -> None:
    response = await auth.login(password="wrong password, quite long")

    assert response.status_code == 200
    assert INVALID in await body(response)
    assert (await auth.client.get("/hello")).status_code == 302


async def test_unknown_user_and_wrong_password_get_identical_responses(
    auth: AuthActions,
) -> None:
    wrong = await auth.login(password="wrong password, quite long")
    unknown = await auth.login(username="mallory", password="wrong password, quite long")

    def normalized(page: str) -> str:
        # The CSRF token is signed with a timestamp; everything else must match exactly.
        page = re.sub(r'value="[^"]*"(?=[^>]*name="csrf_token")', "", page)
        page = re.sub(r'(name="csrf_token" type="hidden" value=")[^"]+', r"\1", page)
        return re.sub(r'(name="username"[^>]*value=")[^"]*', r"\1", page)

    assert wrong.status_code == unknown.status_code == 200
    assert normalized(await body(wrong)) == normalized(await body(unknown))
    assert sorted(wrong.headers.keys()) == sorted(unknown.headers.keys())


@pytest.mark.parametrize(
    ("form", "field_errors"),
    [
        ({"username": "", "password": PASSWORD}, 1),
        ({"username": "alice", "password": ""}, 1),
        ({}, 2),
        ({"username": "a" * 65, "password": PASSWORD}, 1),
        ({"username": "   ", "password": PASSWORD}, 1),
    ],
)
async def test_invalid_form_shows_field_errors_without_checking_credentials(
    auth: AuthActions, form: dict[str, str], field_errors: int
) -> None:
    form = {**form, "csrf_token": await csrf_token(auth.client)}

    response = await auth.client.post("/login", form=form)

    page = await body(response)
    assert response.status_code == 200
    assert len(re.findall(r'class="field-errors"', page)) == field_errors
    assert INVALID not in page


async def test_password_is_checked_exactly_as_typed(auth: AuthActions) -> None:
    for variant in (PASSWORD + " ", " " + PASSWORD, PASSWORD.upper(), PASSWORD[:-1]):
        response = await auth.login(password=variant)
        assert INVALID in await body(response), variant


async def test_logged_in_user_visiting_login_goes_to_hello(auth: AuthActions) -> None:
    await auth.login()

    response = await auth.client.get("/login?next=/welcome")

    assert response.status_code == 302
    assert response.headers["Location"] == "/hello"


async def test_login_required_redirects_with_next_and_flash(client: TestClientProtocol) -> None:
    response = await client.get("/hello?tab=1&x=%2F")

    assert response.status_code == 302
    assert response.headers["Location"] == "/login?next=/hello?tab%3D1%26x%3D%252F"
    login_page = await client.get(response.headers["Location"])
    assert "You need to login first." in await body(login_page)


async def test_login_follows_local_next(auth: AuthActions) -> None:
    redirect = await auth.client.get("/hello?tab=1")

    response = await auth.login(path=redirect.headers["Location"])

    assert response.headers["Location"] == "/hello?tab=1"


@pytest.mark.parametrize(
    ("target", "expected"),
    [("/hello", "/hello"), ("/hello?a=b", "/hello?a=b"), ("//x", None), (None, None)],
)
def test_safe_next_accepts_only_site_paths(target: str | None, expected: str | None) -> None:
    assert safe_next(target) == expected


async def test_legacy_log_path_redirects_permanently(client: TestClientProtocol) -> None:
    response = await client.get("/log?next=%2Fhello")

    assert response.status_code == 301
    assert response.headers["Location"] == "/login?next=%2Fhello"


async def test_logout_get_shows_confirmation_with_one_button(auth: AuthActions) -> None:
    await auth.login()

    response = await auth.client.get("/logout")

    page = await body(response)
    assert response.status_code == 200
    main = page.split("<main", 1)[1]
    assert main.count("<button") == 1
    assert 'action="/logout"' in main


async def test_logout_get_when_logged_out_goes_to_login(client: TestClientProtocol) -> None:
    response = await client.get("/logout")

    assert response.status_code == 302
    assert response.headers["Location"] == "/login"


async def test_logout_ends_login_and_flashes(auth: AuthActions) -> None:
    await auth.login()

    response = await auth.logout()

    assert response.status_code == 302
    assert response.headers["Location"] == "/login"
    assert "You were logged out" in await body(await auth.client.get("/login"))
    assert (await auth.client.get("/hello")).status_code == 302


async def test_logout_without_csrf_token_is_refused(auth: AuthActions) -> None:
    await auth.login()

    response = await auth.client.post("/logout", form={})

    page = await body(response)
    assert response.status_code == 400
    assert "The form could not be verified, so nothing was done." in page
    assert "<title>Form not verified · quartapp</title>" in page
    assert "Bad request" not in page
    assert "Signed in as <strong>alice</strong>" in page
    assert 'href="/logout">Open the form again</a>' in page
    assert (await auth.client.get("/hello")).status_code == 200


@BOTH_DATABASES
async def test_cookie_copied_before_logout_is_useless_after(app: Quart, auth: AuthActions) -> None:
    await auth.login()
    stolen = cookie_value(auth.client)

    await auth.logout()

    response = await replay(app, stolen).get("/hello")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")


async def test_login_replaces_session_cookie_and_csrf_token(auth: AuthActions) -> None:
    before_token = await csrf_token(auth.client)
    before_cookie = cookie_value(auth.client)

    await auth.login()

    assert cookie_value(auth.client) != before_cookie
    # The pre-login token belonged to the cleared session: it no longer validates.
    refused = await auth.client.post("/logout", form={"csrf_token": before_token})
    assert refused.status_code == 400
    assert await csrf_token(auth.client, "/logout") != before_token


async def test_csrf_token_read_from_page_is_accepted(auth: AuthActions) -> None:
    response = await auth.login()

    assert response.status_code == 302


async def test_login_without_csrf_token_gets_friendly_400(auth: AuthActions) -> None:
    await auth.client.get("/login")

    response = await auth.client.post("/login", form={"username": "alice", "password": PASSWORD})

    page = await body(response)
    assert response.status_code == 400
    assert NOT_VERIFIED in page
    assert 'action="/login"' in page
    assert "Traceback" not in page


async def test_login_gives_the_session_a_new_csrf_token(auth: AuthActions) -> None:
    before = await csrf_token(auth.client)
    form = {"username": "alice", "password": PASSWORD, "csrf_token": before}
    assert (await auth.client.post("/login", form=form)).status_code == 302

    # session.clear() at login dropped the token the login page showed.
    refused = await auth.client.post("/logout", form={"csrf_token": before})
    assert refused.status_code == 400
    assert (await auth.client.get("/hello")).status_code == 200
    after = await csrf_token(auth.client, "/logout")
    assert after != before
    assert (await auth.client.post("/logout", form={"csrf_token": after})).status_code == 302


async def test_login_with_other_sessions_csrf_token_is_refused(
    app: Quart, auth: AuthActions
) -> None:
    other_token = await csrf_token(app.test_client())
    await auth.client.get("/login")

    response = await auth.client.post(
        "/login", form={"username": "alice", "password": PASSWORD, "csrf_token": other_token}
    )

    assert response.status_code == 400
    assert NOT_VERIFIED in await body(response)
    assert (await auth.client.get("/hello")).status_code == 302


async def test_session_cookie_lasts_for_browser_session_without_remember(
    auth: AuthActions,
) -> None:
    response = await auth.login()

    morsel = session_cookie(response)["session"]
    assert not morsel["expires"]
    assert not morsel["max-age"]


@pytest.mark.parametrize(("settings_days", "days"), [(None, 30), (7, 7)])
async def test_remember_me_makes_cookie_last_configured_days(
    tmp_path: Path, database: str, settings_days: int | None, days: int
) -> None:
    extra = {} if settings_days is None else {"REMEMBER_ME_DAYS": settings_days}
    app = create_app(settings_at_head(tmp_path, database, **extra))
    async with app.test_app():
        await add_user(app)
        auth = AuthActions(app.test_client())

        response = await auth.login(remember=True)

    expires = datetime.strptime(
        session_cookie(response)["session"]["expires"], "%a, %d %b %Y %H:%M:%S GMT"
    ).replace(tzinfo=UTC)
    assert abs(expires - (datetime.now(UTC) + timedelta(days=days))) < timedelta(minutes=5)


@pytest.mark.parametrize(
    ("mode", "name", "secure"),
    [("development", "session", False), ("production", "__Host-session", True)],
)
async def test_session_cookie_flags_in_each_mode(
    tmp_path: Path, database: str, mode: str, name: str, secure: bool
) -> None:
    app = create_app(settings_at_head(tmp_path, database, ENV=mode, TESTING=False))
    async with app.test_app():
        await add_user(app)

        response = await AuthActions(app.test_client()).login()

    assert response.status_code == 302
    morsel = session_cookie(response, name)[name]
    assert morsel["httponly"] is True
    assert morsel["samesite"] == "Lax"
    assert bool(morsel["secure"]) is secure
    # What a __Host- name requires, or browsers drop the cookie (RFC 6265bis 4.1.3.2).
    assert (morsel["path"], morsel["domain"]) == ("/", "")


@pytest.mark.parametrize("in_fallbacks", [True, False])
async def test_cookie_signed_with_rotated_key_works_only_from_fallbacks(
    tmp_path: Path, database: str, in_fallbacks: bool
) -> None:
    old = create_app(settings_at_head(tmp_path, database))
    async with old.test_app():
        await add_user(old)
        auth = AuthActions(old.test_client())
        await auth.login()
        issued = cookie_value(auth.client)

    new_key = "rotated-key-0123456789abcdefghijklmnopqrstuv"
    fallbacks = [TEST_SECRET_KEY] if in_fallbacks else []
    new = create_app(
        settings_at_head(tmp_path, database, SECRET_KEY=new_key, SECRET_KEY_FALLBACKS=fallbacks)
    )
    async with new.test_app():
        response = await replay(new, issued).get("/hello")

    assert response.status_code == (200 if in_fallbacks else 302)


async def test_nav_shows_logout_button_only_when_logged_in(auth: AuthActions) -> None:
    anonymous = await body(await auth.client.get("/"))
    await auth.login()
    logged_in = await body(await auth.client.get("/"))

    assert 'href="/login"' in anonymous
    assert 'action="/logout"' not in anonymous
    assert 'action="/logout"' in logged_in
    assert "Signed in as" in logged_in


async def age_login(settings: dict[str, Any], *, started: int = 0, seen: int = 0) -> None:
    """Move the server-side login's start and last use ``started``/``seen`` s into the past."""
    await aquery(
        settings,
        f"UPDATE logins SET expires_at = expires_at - {started}, last_seen = last_seen - {seen}",
    )


# Every case reads the row with one SELECT and decides in Python; an ended one deletes
# it. A login kept and one ended run on PostgreSQL too.
@both_databases_for(
    "remember, started, seen, still_in",
    [
        (False, 29 * 60, 29 * 60, True),
        (False, 31 * 60, 31 * 60, False),  # idle for more than 30 minutes
        (False, 12 * 3600 + 60, 60, False),  # active, but older than 12 hours
        (True, 13 * 3600, 31 * 60, True),  # remembered: idle and age limits are 30 days
        (True, 31 * 86400, 60, False),
    ],
    [
        "False-1740-1740-True",
        "False-1860-1860-False",
        "False-43260-60-False",
        "True-46800-1860-True",
        "True-2678400-60-False",
    ],
    postgres=["False-1740-1740-True", "False-1860-1860-False"],
)
async def test_server_enforces_idle_and_absolute_login_limits(
    app: Quart,
    auth: AuthActions,
    settings: dict[str, Any],
    remember: bool,
    started: int,
    seen: int,
    still_in: bool,
) -> None:
    await auth.login(remember=remember)
    await age_login(settings, started=started, seen=seen)
    aged_cookie = cookie_value(auth.client)

    response = await auth.client.get("/hello")

    assert response.status_code == (200 if still_in else 302)
    if not still_in:
        login_page = await body(await auth.client.get(response.headers["Location"]))
        assert "Your session has expired. Please sign in again." in login_page
        # The server-side login is gone too: the aged cookie cannot be replayed.
        assert (await replay(app, aged_cookie).get("/hello")).status_code == 302


async def test_activity_moves_the_idle_timestamp(
    auth: AuthActions, settings: dict[str, Any]
) -> None:
    await auth.login()
    await age_login(settings, seen=20 * 60)
    await auth.client.get("/hello")
    await age_login(settings, seen=20 * 60)

    response = await auth.client.get("/hello")

    assert response.status_code == 200


async def test_expired_login_row_is_refused_whatever_the_cookie_says(
    app: Quart, auth: AuthActions, settings: dict[str, Any]
) -> None:
    await auth.login(remember=True)
    cookie = cookie_value(auth.client)
    # The cookie is freshly signed and says nothing of age; only the row has expired.
    await age_login(settings, started=31 * 86400)

    response = await replay(app, cookie).get("/hello")

    assert response.status_code == 302
    assert await login_count(settings) == 0


# The login page as a person meets it (GOV.UK's error pattern)


def main_of(page: str) -> str:
    """The page's <main> element and what is inside it."""
    found = re.search(r"<main\b.*?</main>", page, re.S)
    assert found, "no <main> on the page"
    return found.group(0)


def tag(page: str, element_id: str) -> str:
    """The opening tag of the element with ``element_id``."""
    found = re.search(rf'<[a-z]+\b[^>]*\bid="{element_id}"[^>]*>', page)
    assert found, f"no element with id {element_id}"
    return found.group(0)


async def post_login(auth: AuthActions, **form: str) -> tuple[int, str]:
    response = await auth.client.post(
        "/login", form={**form, "csrf_token": await csrf_token(auth.client)}
    )
    return response.status_code, await body(response)


async def test_login_page_focuses_the_username_and_loads_its_script(
    client: TestClientProtocol,
) -> None:
    page = await body(await client.get("/login"))

    assert re.search(r"\bautofocus\b", tag(page, "username"))
    assert page.count("autofocus") == 1
    assert '<script src="/static/login.js" defer></script>' in page
    # The show-password button is the script's: without JavaScript there is none.
    assert "password-toggle" not in page


async def test_login_page_names_the_product_and_has_a_footer(client: TestClientProtocol) -> None:
    page = await body(await client.get("/login"))

    assert '<a class="brand" href="/">quartapp</a>' in page
    assert "<footer" in page


async def test_empty_login_lists_each_bad_field_in_a_focused_error_summary(
    auth: AuthActions,
) -> None:
    status, page = await post_login(auth, username="", password="")

    assert status == 200
    summary = re.search(r'<div class="error-summary"[^>]*>(.*?)</div>', page, re.S)
    assert summary, "no error summary"
    assert 'role="alert"' in summary.group(0)
    assert 'tabindex="-1"' in summary.group(0)
    assert "autofocus" in summary.group(0)
    assert "There is a problem" in summary.group(1)
    assert re.findall(r'<a href="(#\w+)">([^<]+)</a>', summary.group(1)) == [
        ("#username", "Enter your username."),
        ("#password", "Enter your password."),
    ]
    assert page.count("autofocus") == 1
    assert "<title>Error: Sign in · quartapp</title>" in page


@pytest.mark.parametrize("field", ["username", "password"])
async def test_invalid_field_is_marked_and_described_by_its_message(
    auth: AuthActions, field: str
) -> None:
    status, page = await post_login(auth, username="", password="")

    opening = tag(page, field)
    assert status == 200
    assert 'aria-invalid="true"' in opening
    assert f'aria-describedby="{field}-errors"' in opening
    assert f'<ul class="field-errors" id="{field}-errors">' in page


async def test_wrong_password_shows_the_error_inside_main_like_a_flash(
    auth: AuthActions,
) -> None:
    status, page = await post_login(auth, username="alice", password="not the password")

    main = main_of(page)
    assert status == 200
    notice = rf'<div class="notice notice-error" role="alert"[^>]*>\s*<p>{INVALID}</p>'
    assert re.search(notice, main)
    assert 'value="alice"' in tag(page, "username")
    assert "not the password" not in page


async def test_flashes_show_inside_main_in_the_same_style(client: TestClientProtocol) -> None:
    await client.get("/hello")

    page = await body(await client.get("/login?next=/hello"))

    assert re.search(
        r'<div class="notice notice-warning" role="status">\s*<p>You need to login first.</p>',
        main_of(page),
    )


async def test_logged_out_flash_shows_inside_main(auth: AuthActions) -> None:
    await auth.login()
    await auth.logout()

    page = await body(await auth.client.get("/login"))

    notice = r'class="notice notice-info"[^>]*>\s*<p>You were logged out</p>'
    assert re.search(notice, main_of(page))


async def test_refused_login_form_comes_back_with_the_username_and_a_fresh_token(
    auth: AuthActions,
) -> None:
    await auth.client.get("/login")

    response = await auth.client.post(
        "/login?next=/hello", form={"username": "alice", "password": PASSWORD}
    )

    page = await body(response)
    assert response.status_code == 400
    assert "<title>Form not verified · Sign in · quartapp</title>" in page
    assert NOT_VERIFIED in main_of(page)
    assert "Bad request" not in page
    assert 'value="alice"' in tag(page, "username")
    assert PASSWORD not in page
    assert 'action="/login?next=/hello"' in page
    # The fresh token in the page logs in at once.
    token = await csrf_token(auth.client)
    again = await auth.client.post(
        "/login?next=/hello", form={"username": "alice", "password": PASSWORD, "csrf_token": token}
    )
    assert (again.status_code, again.headers["Location"]) == (302, "/hello")


async def test_expired_login_form_drops_a_username_that_is_not_plain_text(
    client: TestClientProtocol,
) -> None:
    await client.get("/login")

    response = await client.post("/login", form={"username": "al\x00ice", "password": "x"})

    assert response.status_code == 400
    assert 'value=""' in tag(await body(response), "username")
