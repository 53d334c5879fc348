"""The account overview (/account): a row per part of signing in with its status and
link, and the account's recent security activity.

Rows and events are read from the database: one test of each row's statements and of
the events' read runs on both; the page's rules, and tests that read the same
statements again (more sessions, more events), run on SQLite.
"""

from __future__ import annotations

import re
from html import unescape
from typing import TYPE_CHECKING, Any

import pytest
from quart import Quart

from tests.conftest import (
    BOTH_DATABASES,
    PASSWORD,
    AuthActions,
    add_user,
    aquery,
    body,
    csrf_token,
)

from .leaving import UA, seed
from .test_delete import sign_in_with_code

if TYPE_CHECKING:
    from quart.typing import TestClientProtocol

OVERVIEW = "/account"
NEW_PASSWORD = "a brand new password, long enough"


def rows(page: str) -> dict[str, tuple[str, str | None]]:
    """The overview's rows: title -> (status, the link's address)."""
    found = {}
    for match in re.finditer(r'<div class="overview-row">(.*?)</div>', page, re.S):
        row = match.group(1)
        title = re.search(r'<dt class="overview-title">(.*?)</dt>', row, re.S)
        status = re.search(r'<dd class="overview-status">(.*?)</dd>', row, re.S)
        link = re.search(r'<a href="([^"]+)">', row)
        assert title
        assert status
        found[unescape(title.group(1))] = (
            unescape(status.group(1)),
            link.group(1) if link else None,
        )
    return found


def activity(page: str) -> list[str]:
    """The texts of the listed security events, in the page's order."""
    return [unescape(t) for t in re.findall(r'<span class="activity-text">(.*?)</span>', page)]


async def overview(client: TestClientProtocol) -> str:
    response = await client.get(OVERVIEW)
    assert response.status_code == 200
    return await body(response)


@pytest.fixture
def mail_off(settings: dict[str, Any]) -> None:
    """The app is built with mail off (requested before ``app``)."""
    settings["MAIL_URL"] = "none"


async def test_the_overview_needs_a_login(client: TestClientProtocol) -> None:
    response = await client.get(OVERVIEW)

    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")


@BOTH_DATABASES
async def test_a_new_account_shows_each_row_with_its_link(auth: AuthActions) -> None:
    await auth.login()

    found = rows(await overview(auth.client))

    assert list(found) == [
        "Password",
        "Two-factor authentication",
        "Passkeys",
        "Email address",
        "Your sessions",
        "Trusted devices",
    ]
    assert found["Password"][0].startswith("Set when the account was made, ")
    assert found["Password"][0].endswith(" UTC")
    assert found["Two-factor authentication"] == ("Off", "/account/two-factor")
    assert found["Passkeys"] == ("None", "/account/passkeys")
    assert found["Email address"] == ("None", "/account/email")
    assert found["Your sessions"] == ("Signed in on 1 device", "/account/sessions")
    # This browser became a trusted device when it signed in.
    assert found["Trusted devices"] == ("1 trusted browser", "/account/sessions")


async def test_the_links_say_change_or_manage(auth: AuthActions) -> None:
    await auth.login()

    page = await overview(auth.client)

    assert re.search(
        r'href="/account/password">Change<span class="visually-hidden"> password', page
    )
    assert re.search(
        r'href="/account/passkeys">Manage<span class="visually-hidden"> passkeys', page
    )
    assert re.search(r'href="/account/email">Change<span class="visually-hidden"> email', page)


@BOTH_DATABASES
async def test_two_factor_on_shows_the_recovery_codes_left_and_the_counts(
    app: Quart, client: TestClientProtocol
) -> None:
    await add_user(app, "alice")
    await seed(app, "alice")  # TOTP on, one code of two left, a passkey, a device, an address
    await sign_in_with_code(AuthActions(client))

    found = rows(await overview(client))

    assert found["Two-factor authentication"][0] == "On, 1 recovery code left"
    assert found["Passkeys"][0] == "1 passkey"
    assert found["Email address"][0] == "alice@example.test"
    assert found["Trusted devices"][0] == "2 trusted browsers"


async def test_the_sessions_row_counts_live_logins(app: Quart, auth: AuthActions) -> None:
    await auth.login()
    await AuthActions(app.test_client()).login()
    await AuthActions(app.test_client()).login()

    found = rows(await overview(auth.client))

    assert found["Your sessions"][0] == "Signed in on 3 devices"


@BOTH_DATABASES
async def test_the_password_row_says_when_it_was_last_changed(
    auth: AuthActions, settings: dict[str, Any]
) -> None:
    await auth.login()
    token = await csrf_token(auth.client, "/account/password")
    response = await auth.client.post(
        "/account/password",
        form={
            "csrf_token": token,
            "current_password": PASSWORD,
            "new_password": NEW_PASSWORD,
            "new_password2": NEW_PASSWORD,
        },
    )
    assert response.status_code == 302, await body(response)

    found = rows(await overview(auth.client))

    assert found["Password"][0].startswith("Last changed ")
    [(changed,)] = await aquery(settings, "SELECT password_changed_at FROM users")
    assert changed is not None


async def test_with_mail_off_there_is_no_email_row(mail_off: None, auth: AuthActions) -> None:
    await auth.login()

    found = rows(await overview(auth.client))

    assert "Email address" not in found
    assert "Password" in found


@BOTH_DATABASES
async def test_recent_activity_lists_this_accounts_events_newest_first(
    app: Quart, auth: AuthActions
) -> None:
    await add_user(app, "bob")
    bob = AuthActions(app.test_client())
    await bob.login("bob")
    await bob.logout()
    await auth.login("alice", "wrong password, quite long")
    await auth.login()
    await auth.logout()
    await auth.login()

    page = await overview(auth.client)

    assert activity(page) == ["Signed in", "Signed out", "Signed in", "Wrong password given"]
    assert page.count("<time datetime=") == 4
    assert "UTC</time>" in page
    assert "&lt;local&gt;" in page  # the test client's address


async def test_recent_activity_shows_at_most_ten(
    auth: AuthActions, settings: dict[str, Any]
) -> None:
    for _ in range(6):
        await auth.login()
        await auth.logout()
    await auth.login()

    page = await overview(auth.client)

    assert len(activity(page)) == 10
    assert activity(page)[0] == "Signed in"
    [(stored,)] = await aquery(settings, "SELECT count(*) FROM security_events")
    assert stored == 13


async def test_a_new_account_with_no_events_says_so(
    auth: AuthActions, settings: dict[str, Any]
) -> None:
    await auth.login()
    # What the sign-in wrote is gone (pruned, say).
    await aquery(settings, "DELETE FROM security_events")

    page = await overview(auth.client)

    assert "Nothing recorded yet." in page
    assert activity(page) == []


async def test_the_browser_is_shown_in_words(app: Quart, client: TestClientProtocol) -> None:
    await add_user(app)
    token = await csrf_token(client)
    await client.post(
        "/login",
        form={"username": "alice", "password": PASSWORD, "csrf_token": token},
        headers={"User-Agent": UA},
    )

    page = await overview(client)

    assert "Firefox on Linux" in page


async def test_the_overview_keeps_the_data_links(auth: AuthActions) -> None:
    await auth.login()

    page = await overview(auth.client)

    assert 'href="/account/export"' in page
    assert 'href="/account/delete"' in page
