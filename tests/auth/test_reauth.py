"""Tests for re-authentication (quartapp.auth.reauth): fresh logins and /login/confirm."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import pytest
from quart import Quart

from quartapp.auth.current import login_required
from quartapp.auth.reauth import fresh_login_required, is_fresh
from tests.conftest import BOTH_DATABASES, PASSWORD, AuthActions, aquery, body, csrf_token
from tests.support.settings import DEFAULTS
from tests.support.settings import auth as load_auth_settings

AUTH = load_auth_settings()

# Freshness lives on the login row: the test that writes it again at /login/confirm runs
# on PostgreSQL too (the rule: tests/conftest.py). The rest are redirects, pages, the
# throttle's statements (test_throttle.py) and Python's reading of the column.

if TYPE_CHECKING:
    from quart.typing import ResponseReturnValue, TestClientProtocol

SENSITIVE = "/test/sensitive"
CONFIRM = "/login/confirm?next=/test/sensitive"


@pytest.fixture
def guarded(app: Quart) -> None:
    """A sensitive page, guarded as the factor pages are."""

    @login_required
    @fresh_login_required
    async def sensitive() -> ResponseReturnValue:
        return "changed the factors"

    app.add_url_rule(SENSITIVE, "sensitive", sensitive)


async def age_logins(settings: dict[str, Any], seconds: float) -> None:
    """Make every login's last proof ``seconds`` old."""
    await aquery(settings, f"UPDATE logins SET verified_at = {time.time() - seconds}")


async def verified_at(settings: dict[str, Any]) -> float | None:
    (value,) = (await aquery(settings, "SELECT verified_at FROM logins"))[0]
    return None if value is None else float(value)


async def confirm(client: TestClientProtocol, password: str = PASSWORD) -> Any:
    token = await csrf_token(client, CONFIRM)
    return await client.post(CONFIRM, form={"password": password, "csrf_token": token})


def test_a_login_is_fresh_for_the_window_only() -> None:
    now = 1_000_000.0
    window = DEFAULTS["REAUTH_MINUTES"] * 60
    assert is_fresh(AUTH, now - window, now)
    assert not is_fresh(AUTH, now - window - 1, now)
    # A login from before the column existed, or from a clock that went back.
    assert not is_fresh(AUTH, None, now)
    assert not is_fresh(AUTH, now + 5, now)


async def test_a_fresh_login_goes_straight_through(
    guarded: None, auth: AuthActions, client: TestClientProtocol, settings: dict[str, Any]
) -> None:
    await auth.login()
    assert await verified_at(settings) == pytest.approx(time.time(), abs=30)
    response = await client.get(SENSITIVE)
    assert response.status_code == 200
    assert await body(response) == "changed the factors"


async def test_anonymous_visitors_are_sent_to_log_in_first(
    guarded: None, client: TestClientProtocol
) -> None:
    response = await client.get(SENSITIVE)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=")
    assert (await client.get("/login/confirm")).status_code == 302


@BOTH_DATABASES
async def test_a_stale_login_confirms_with_its_password_then_comes_back(
    guarded: None, auth: AuthActions, client: TestClientProtocol, settings: dict[str, Any]
) -> None:
    await auth.login()
    await age_logins(settings, DEFAULTS["REAUTH_MINUTES"] * 60 + 5)
    response = await client.get(SENSITIVE)
    assert response.status_code == 302
    assert response.headers["Location"] == CONFIRM
    page = await body(await client.get(CONFIRM))
    assert "Confirm it&#39;s you" in page
    assert "Confirm it&#39;s you to continue." in page  # the flash

    before = await verified_at(settings)
    wrong = await confirm(client, "not the password at all, sorry")
    assert wrong.status_code == 400
    assert "Your password is wrong." in await body(wrong)
    assert await verified_at(settings) == before

    right = await confirm(client)
    assert right.status_code == 302
    assert right.headers["Location"] == SENSITIVE
    assert await verified_at(settings) == pytest.approx(time.time(), abs=30)
    assert (await client.get(SENSITIVE)).status_code == 200


async def test_a_login_from_before_the_migration_is_stale(
    guarded: None, auth: AuthActions, client: TestClientProtocol, settings: dict[str, Any]
) -> None:
    await auth.login()
    await aquery(settings, "UPDATE logins SET verified_at = NULL")
    assert (await client.get(SENSITIVE)).headers["Location"] == CONFIRM


async def test_confirm_goes_only_to_pages_on_this_site(
    auth: AuthActions, client: TestClientProtocol
) -> None:
    await auth.login()
    path = "/login/confirm?next=//evil.example/"
    token = await csrf_token(client, path)
    response = await client.post(path, form={"password": PASSWORD, "csrf_token": token})
    assert response.headers["Location"] == "/account"


async def test_wrong_passwords_at_confirm_count_toward_the_lockout(
    guarded: None, auth: AuthActions, client: TestClientProtocol
) -> None:
    await auth.login()
    responses = [
        await confirm(client, "not the password at all, sorry")
        for _ in range(DEFAULTS["LOGIN_FAILURES_PER_USER"] + 1)
    ]
    statuses = [response.status_code for response in responses]
    assert statuses[:-1] == [400] * DEFAULTS["LOGIN_FAILURES_PER_USER"]
    assert statuses[-1] == 429
    # The confirm form's own words (its blueprint's handler), and the way back to it.
    page = await body(responses[-1])
    assert "There were too many wrong passwords." in page
    assert "Back to the confirmation form" in page
    assert "/login/confirm?next=/test/sensitive" in page
    assert int(responses[-1].headers["Retry-After"]) > 0


async def test_the_sessions_page_says_how_each_login_was_made(
    auth: AuthActions, client: TestClientProtocol, settings: dict[str, Any]
) -> None:
    await auth.login()
    assert await aquery(settings, "SELECT method FROM logins") == [("password",)]
    page = await body(await client.get("/account/sessions"))
    assert "<dt>Signed in with</dt>" in page
    assert '<dd class="session-method">Password</dd>' in page
