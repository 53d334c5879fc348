"""Two-factor authentication in a real Chromium against a real hypercorn.

A person turns TOTP on with codes that pyotp computes from the key read off the page
(as their phone would), signs in with a code, is refused the same code again, signs
in with a recovery code once, and turns TOTP off. Every new page gets
``visitor.check``: screenshots at desktop and phone sizes, and no axe-core violations.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
import time

import pytest
from playwright.sync_api import Page, expect

from tests.support.browser import PASSWORD, USERNAME, Visitor, send_login
from tests.support.server import Server
from tests.support.twofactor import Phone, steady

pytestmark = [pytest.mark.browser, pytest.mark.server]

WRONG_CODE = "That code is wrong or was used already."


def enter_code(visitor: Visitor, code: str) -> None:
    visitor.page.get_by_label("Code").fill(code)
    visitor.page.get_by_role("button", name="Continue").click()


def log_out(visitor: Visitor) -> None:
    visitor.page.get_by_role("navigation").get_by_role("button", name="Log out").click()
    expect(visitor.page).to_have_url(visitor.base_url + "/login")


def group_heights(page: Page) -> list[float]:
    """The rendered height of each group of the key: one line each, none split."""
    heights = page.locator(".totp-key .totp-group").evaluate_all(
        "groups => groups.map(group => group.getBoundingClientRect().height)"
    )
    return [float(height) for height in heights]


def clipboard(page: Page) -> str:
    """What the page put on the clipboard (the context may read it: see the fixture)."""
    return str(page.evaluate("navigator.clipboard.readText()"))


@pytest.fixture
def page(page: Page) -> Page:
    """The worker's page, its context allowed to read the clipboard the page writes
    (the permission is taken back when the test ends: see tests/support/browser.py)."""
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    return page


def age_logins(server: Server, seconds: float) -> None:
    """Make every login's last proof ``seconds`` old, in the server's SQLite file."""
    path = server.env["DATABASE_URL"].removeprefix("sqlite:///")
    with contextlib.closing(sqlite3.connect(path)) as connection, connection:
        connection.execute("UPDATE logins SET verified_at = ?", (time.time() - seconds,))


def test_turn_on_sign_in_refuse_reuse_recover_and_turn_off(
    visitor: Visitor, server: Server
) -> None:
    page = visitor.page
    send_login(visitor)
    expect(page).to_have_url(visitor.base_url + "/hello")

    # Turning it on, from the account page.
    page.get_by_role("navigation").get_by_role("link", name="Account").click()
    expect(page).to_have_url(visitor.base_url + "/account")
    page.get_by_role("link", name="Manage two-factor authentication").click()
    expect(page).to_have_title("Set up two-factor authentication · quartapp")
    qr = page.get_by_role("img", name=re.compile("^QR code for your authenticator app"))
    expect(qr).to_be_visible()
    # The SVG loads under the strict CSP, from the app's own URL.
    page.wait_for_function(
        "() => { const qr = document.querySelector('.totp-qr');"
        " return qr.complete && qr.naturalWidth > 0; }"
    )
    expect(page.get_by_label("Code")).to_be_focused()
    visitor.check("twofactor-enrol")

    phone = Phone(page.locator("#totp-secret").text_content() or "")
    assert re.fullmatch(r"[A-Z2-7]{32}", phone.secret)
    # Shown in groups of four, each on one line even on a phone.
    groups = page.locator(".totp-key .totp-group")
    expect(groups).to_have_count(8)
    assert "".join(groups.all_text_contents()) == phone.secret
    page.set_viewport_size({"width": 390, "height": 844})
    assert all(height < 30 for height in group_heights(page))
    # Copy, with the keyboard: the clipboard gets the key without spaces.
    expect(page.get_by_role("button", name="Copy the key")).to_be_visible()
    copy = page.locator("#copy-key")
    copy.focus()
    page.keyboard.press("Enter")
    expect(copy).to_have_text("Copied")
    expect(page.locator("#totp-copy-status")).to_have_text("The key was copied.")
    assert clipboard(page) == phone.secret
    visitor.check("twofactor-enrol-copied")
    page.set_viewport_size({"width": 1280, "height": 800})
    wrong = f"{(int(phone.code()) + 1) % 1_000_000:06d}"
    page.get_by_label("Code").fill(wrong)
    page.get_by_role("button", name="Turn on two-factor authentication").click()
    expect(page).to_have_title("Error: Set up two-factor authentication · quartapp")
    expect(page.locator(".error-summary")).to_be_focused()
    expect(page.locator(".error-summary")).to_contain_text(WRONG_CODE)
    visitor.check("twofactor-enrol-error")
    # The key did not change: the phone's next try is right.
    expect(page.locator("#totp-secret")).to_have_text(phone.secret)
    # The step before the current one: the sign-ins below use this one and the next.
    steady()
    phone.step = int(time.time() // 30)
    page.get_by_label("Code").fill(phone.code(-1))
    page.get_by_role("button", name="Turn on two-factor authentication").click()

    # Ten recovery codes, once, with download and print.
    expect(page).to_have_title("Your recovery codes · quartapp")
    items = page.locator("#recovery-codes > li")
    expect(items).to_have_count(10)
    codes = [text.strip() for text in items.all_inner_texts()]
    assert all(re.fullmatch(r"([A-Z2-9]{4}-){5}[A-Z2-9]{4}", code) for code in codes)
    expect(page.get_by_role("button", name="Print")).to_be_visible()
    page.get_by_role("button", name="Copy", exact=True).click()
    copy_codes = page.locator("#copy-codes")
    expect(copy_codes).to_have_text("Copied")
    expect(page.locator("#codes-copy-status")).to_have_text("The ten codes were copied.")
    assert clipboard(page) == "\n".join(codes)
    visitor.check("twofactor-recovery-codes-copied")
    with page.expect_download() as download:
        page.get_by_role("button", name="Download as text").click()
    assert download.value.suggested_filename == "quartapp-recovery-codes.txt"
    saved = download.value.path().read_text()
    assert all(code in saved for code in codes)
    visitor.check("twofactor-recovery-codes")
    page.get_by_role("link", name="I have saved my codes").click()
    expect(page).to_have_title("Two-factor authentication · quartapp")
    expect(page.locator("#recovery-left")).to_have_text("You have 10 unused recovery codes.")
    visitor.check("twofactor-settings")
    log_out(visitor)

    # Signing in takes the password, then a code.
    send_login(visitor)
    expect(page).to_have_url(visitor.base_url + "/login/two-factor")
    expect(page.get_by_label("Code")).to_be_focused()
    visitor.check("twofactor-login")
    visitor.goto("/hello")  # not signed in yet
    expect(page).to_have_url(re.compile(r"/login\?next="))
    send_login(visitor)
    enter_code(visitor, phone.code())
    expect(page).to_have_url(visitor.base_url + "/hello")
    expect(page.get_by_role("banner")).to_contain_text(f"Signed in as {USERNAME}")
    log_out(visitor)

    # The same code again is refused; a recovery code gets in, once.
    send_login(visitor)
    enter_code(visitor, phone.code())
    expect(page).to_have_title("Error: Enter your code · quartapp")
    expect(page.locator(".error-summary")).to_contain_text(WRONG_CODE)
    visitor.check("twofactor-login-error")
    enter_code(visitor, codes[0])
    expect(page).to_have_url(visitor.base_url + "/hello")
    expect(page.locator("main")).to_contain_text("You signed in with a recovery code; 9 left.")
    log_out(visitor)
    send_login(visitor)
    enter_code(visitor, codes[0])
    expect(page.locator(".error-summary")).to_contain_text(WRONG_CODE)
    enter_code(visitor, codes[1])
    expect(page).to_have_url(visitor.base_url + "/hello")

    # New recovery codes are one click away (not made here), and turning off is another.
    visitor.goto("/account/two-factor")
    expect(page.locator("#recovery-left")).to_have_text("You have 8 unused recovery codes.")
    page.get_by_role("link", name="Make new recovery codes").click()
    expect(page).to_have_title("Make new recovery codes · quartapp")
    expect(page.locator(".confirm-ends")).to_contain_text("Your 8 unused recovery codes")
    visitor.check("twofactor-new-codes")
    page.get_by_role("link", name="Cancel").click()
    # Ten minutes on, turning it off asks for the password and a code first.
    age_logins(server, 3600)
    page.get_by_role("link", name="Turn off two-factor authentication").click()
    expect(page).to_have_title("Confirm it's you · quartapp")
    expect(page.get_by_label("Code")).to_be_visible()
    visitor.check("twofactor-confirm")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    phone.step = int(time.time() // 30)
    page.get_by_label("Code").fill(phone.code(1))  # later than any used, within the window
    page.get_by_role("button", name="Confirm").click()
    expect(page).to_have_title("Turn off two-factor authentication · quartapp")
    expect(page.locator(".confirm-ends")).to_contain_text("Your 8 unused recovery codes")
    visitor.check("twofactor-disable")
    page.get_by_role("button", name="Turn off two-factor authentication").click()
    # The account's front page, with a neutral note, not a new key.
    expect(page).to_have_url(visitor.base_url + "/account")
    expect(page.locator("main .notice-info")).to_contain_text("Two-factor authentication is off.")
    expect(page.locator(".notice-success")).to_have_count(0)
    visitor.check("twofactor-turned-off")
    log_out(visitor)
    send_login(visitor)
    expect(page).to_have_url(visitor.base_url + "/hello")
