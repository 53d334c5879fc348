"""The account pages in a real Chromium against a real hypercorn.

A person changes their password with the keyboard alone, and ends the login of
another device (a second browser context) from the sessions page. Each page gets
``visitor.check``: screenshots at desktop and phone sizes, and no axe-core violations.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.support.browser import PASSWORD, USERNAME, Visitor, log_in, restore, sign_in, visit
from tests.support.pg import PostgresServer
from tests.support.server import Server

pytestmark = [pytest.mark.browser, pytest.mark.server]

NEW_PASSWORD = "a brand new passphrase, also long"
# The only login: nothing else ended, and the message says no more.
CHANGED = "Your password was changed."
ENDED_ELSEWHERE = (
    "You were logged out because this session was ended from another device or the "
    "password changed."
)


@pytest.fixture
def server(server: Server, served_sqlite_template: Path) -> Server:
    """The module's server, its database put back before each test: these tests change
    alice's password and end her logins."""
    restore(server, served_sqlite_template)
    return server


def next_box(page: Page) -> None:
    """From a password box to the next one, past its Show button."""
    page.keyboard.press("Tab")
    expect(page.locator(":focus")).to_have_text("Show")
    page.keyboard.press("Tab")


def test_change_password_with_the_keyboard_only(visitor: Visitor) -> None:
    page = visitor.page
    sign_in(visitor)
    page.get_by_role("navigation").get_by_role("link", name="Account").click()
    expect(page).to_have_url(visitor.base_url + "/account")
    expect(page).to_have_title("Your account · quartapp")
    expect(page.locator(".activity-text").first).to_have_text("Signed in")
    visitor.check("account-overview")
    page.get_by_role("link", name="Change password").click()
    expect(page).to_have_title("Change your password · quartapp")
    expect(page.locator("#current_password")).to_be_focused()
    visitor.check("account-password")

    # Each box has its Show button after it, so Tab goes box, button, box.
    expect(page.get_by_role("button", name="Show current password")).to_be_visible()
    expect(page.get_by_role("button", name="Show new password", exact=True)).to_be_visible()
    expect(page.get_by_role("button", name="Show new password again")).to_be_visible()

    # A guessable new password first: the error summary takes the focus.
    page.keyboard.type(PASSWORD)
    next_box(page)
    page.keyboard.type("passwordpassword")
    next_box(page)
    page.keyboard.type("passwordpassword")
    page.keyboard.press("Enter")

    summary = page.locator(".error-summary")
    expect(summary).to_be_focused()
    expect(page).to_have_title("Error: Change your password · quartapp")
    expect(summary.get_by_role("link")).to_have_text(
        re.compile(r"^The password is too easy to guess: ")
    )
    expect(page.locator("#new_password")).to_have_attribute("aria-invalid", "true")
    visitor.check("account-password-errors")

    # The summary's link leads to the field; the current password is just before it.
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    expect(page.locator("#new_password")).to_be_focused()
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Shift+Tab")
    expect(page.locator("#current_password")).to_be_focused()
    page.keyboard.type(PASSWORD)
    next_box(page)
    page.keyboard.type(NEW_PASSWORD)
    next_box(page)
    page.keyboard.type(NEW_PASSWORD)
    page.keyboard.press("Enter")

    expect(page).to_have_url(visitor.base_url + "/account/sessions")
    expect(page.locator("main [role=status]")).to_have_text(CHANGED)
    expect(page.locator(".session")).to_have_count(1)
    visitor.check("account-password-changed")

    # Still logged in here, and the new password is the one that works from now on.
    page.get_by_role("navigation").get_by_role("button", name="Log out").click()
    log_in(visitor, NEW_PASSWORD)


def test_end_another_devices_login_from_the_sessions_page(
    visitor: Visitor, browser: Browser, server: Server, request: pytest.FixtureRequest
) -> None:
    phone_context = browser.new_context(
        user_agent=(
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
            "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
        )
    )
    try:
        phone = Visitor(phone_context.new_page(), server.base_url, request.node.name)
        sign_in(phone)
        sign_in(visitor)
        page = visitor.page
        visitor.goto("/account/sessions")

        sessions = page.locator(".session")
        expect(sessions).to_have_count(2)
        expect(sessions.first).to_contain_text("This device")
        expect(sessions.nth(1)).to_contain_text("Safari on iPhone")
        expect(page.locator("time").first).to_have_attribute(
            "datetime", re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\dZ$")
        )
        visitor.check("account-sessions")

        # Log out everywhere else asks first, naming what ends; Cancel ends nothing.
        page.get_by_role("link", name="Log out everywhere else").click()
        expect(page).to_have_title("Log out everywhere else · quartapp")
        expect(page.locator(".confirm-ends li")).to_have_text(
            [re.compile("Safari on iPhone"), re.compile("The trust of 1 other browser")]
        )
        visitor.check("account-end-others-confirm")
        page.get_by_role("link", name="Cancel").click()
        expect(sessions).to_have_count(2)

        # So does ending one, from its own link, with the keyboard.
        sessions.nth(1).get_by_role("link", name=re.compile("^End this session")).focus()
        page.keyboard.press("Enter")
        expect(page.get_by_role("heading", level=1)).to_have_text(
            "End the session on Safari on iPhone?"
        )
        confirm = page.get_by_role("button", name="End this session")
        expect(confirm).to_have_class("button-warning")
        visitor.check("account-end-session-confirm")
        confirm.click()

        expect(page.locator("main [role=status]")).to_have_text("That session was ended.")
        expect(sessions).to_have_count(1)
        expect(page.get_by_role("button", name="Log out everywhere else")).to_have_count(0)
        visitor.check("account-sessions-ended")
        # The phone is logged out on its next request.
        phone.goto("/hello")
        expect(phone.page).to_have_url(re.compile(r"/login\?next=(/|%2F)hello$"))
        expect(phone.page.locator("main [role=status]")).to_have_text(ENDED_ELSEWHERE)
        expect(phone.page.get_by_role("banner")).not_to_contain_text("Signed in")
        phone.check("login-ended-elsewhere")
        phone.assert_no_errors()
    finally:
        phone_context.close()


@pytest.mark.postgres
def test_an_outage_keeps_the_header_and_the_typed_username(
    stoppable_postgres: PostgresServer,
    outage_server: Server,
    page: Page,
    request: pytest.FixtureRequest,
) -> None:
    """PostgreSQL stopped under a development server: the 503 pages, as people see them."""
    visitor = next(visit(page, outage_server, request))
    sign_in(visitor)
    anonymous_context = page.context.browser.new_context()  # type: ignore[union-attr]
    try:
        anonymous = Visitor(
            anonymous_context.new_page(), outage_server.base_url, request.node.name
        )
        anonymous.goto("/login")
        stoppable_postgres.stop("fast")
        try:
            response = visitor.goto("/hello")
            assert response.status == 503
            banner = page.get_by_role("banner")
            expect(banner).to_contain_text(f"Signed in as {USERNAME}")
            expect(banner.get_by_role("link", name="Sign in")).to_have_count(0)
            expect(page.get_by_role("link", name="Try again")).to_be_visible()
            visitor.check("outage-signed-in")

            anonymous.page.get_by_label("Username").fill(USERNAME)
            anonymous.page.get_by_label("Password", exact=True).fill(PASSWORD)
            anonymous.page.get_by_role("button", name="Sign in").click()
            expect(anonymous.page).to_have_title("Temporarily unavailable · Sign in · quartapp")
            expect(anonymous.page.get_by_label("Username")).to_have_value(USERNAME)
            expect(anonymous.page.get_by_label("Password", exact=True)).to_have_value("")
            anonymous.check("outage-sign-in")
        finally:
            stoppable_postgres.start()
        # The same form, sent again once the database is back, signs in.
        anonymous.page.get_by_label("Password", exact=True).fill(PASSWORD)
        anonymous.page.get_by_role("button", name="Sign in").click()
        expect(anonymous.page).to_have_url(outage_server.base_url + "/hello")
        anonymous.assert_no_errors()
        visitor.assert_no_errors()
    finally:
        anonymous_context.close()
