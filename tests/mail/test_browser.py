"""A password reset by mail in a real Chromium, against a real hypercorn and SMTP server.

Alice forgets her password: the login page's link, her address, the mail the app's own
sender delivers to an aiosmtpd sink, its link, a new password, and a sign-in with it.
The link then works no more. Each page gets ``visitor.check``: screenshots at desktop
and phone sizes, and no axe-core violations.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.support.browser import (
    PASSWORD,
    USERNAME,
    Visitor,
    restore,
    send_login,
    snapshot,
    wait_for_subject,
)
from tests.support.server import ROOT, Server
from tests.support.smtp import RunningSink

pytestmark = [pytest.mark.browser, pytest.mark.server]

ADDRESS = "alice@example.com"
NEW_PASSWORD = "a brand new passphrase, also long"
RESET_DONE = "Your password was reset, and every device was signed out. Sign in with it."
INVALID = "Invalid Credentials. Please try again."
LINK_DEAD = re.compile(r"^It was used already, a newer one was sent")
MISMATCH = "Enter the same new password in both boxes."


@pytest.fixture(scope="module")
def with_address(
    mail_server: Server, served_sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The worker's mail server's database with alice's address set by the CLI, once
    for the module, kept for :func:`restore`."""
    restore(mail_server, served_sqlite_template)
    set_email(mail_server)
    return snapshot(mail_server, tmp_path_factory.mktemp("browser-mail") / "with-address.db")


@pytest.fixture
def server(mail_server: Server, with_address: Path) -> Server:
    """The worker's mail server, put back before each test: each resets alice's password
    and spends its link."""
    restore(mail_server, with_address)
    return mail_server


@pytest.fixture
def running(mail_sink: RunningSink, server: Server) -> RunningSink:
    """The sink, emptied of the mail of the tests before (after the restore, which
    drops what their server had still to send)."""
    mail_sink.sink.clear()
    return mail_sink


def set_email(server: Server) -> None:
    """Give alice a confirmed address with the CLI, as an operator would."""
    command = ["users", "set-email", USERNAME, ADDRESS]
    result = subprocess.run(
        [sys.executable, "-m", "quart", "--app", "quartapp", *command],
        cwd=ROOT,
        env=dict(server.env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def request_link(visitor: Visitor, running: RunningSink) -> str:
    """From the login page to the link in the mail, checking each page on the way."""
    page = visitor.page
    visitor.goto("/login")
    page.get_by_role("link", name="Forgot your password?").click()
    expect(page).to_have_url(visitor.base_url + "/reset_password_request")
    expect(page).to_have_title("Reset your password · quartapp")
    expect(page.get_by_label("Email")).to_be_focused()
    visitor.check("mail-reset-request")

    page.get_by_label("Email").fill(ADDRESS)
    page.get_by_role("button", name="Request Password Reset").click()
    expect(page).to_have_title("Check your email · quartapp")
    visitor.check("mail-reset-requested")

    # A notice of an earlier test may still come in: the reset mail is the one asked for.
    received = wait_for_subject(running, "Reset your password")
    assert received.recipients == [ADDRESS]
    text = received.message.get_body(("plain",))
    assert text is not None
    links = re.findall(
        re.escape(visitor.base_url) + r"/reset_password/[A-Za-z0-9_-]+", text.get_content()
    )
    assert len(links) == 1, text.get_content()
    return str(links[0])


def open_link(visitor: Visitor, link: str) -> None:
    """Follow the link: it leads on to a URL without the token."""
    page = visitor.page
    response = page.goto(link)
    assert response is not None
    assert response.status == 200
    assert page.url == visitor.base_url + "/reset_password"
    expect(page).to_have_title("Choose a new password · quartapp")
    expect(page.get_by_label("New password", exact=True)).to_be_focused()


def set_password(visitor: Visitor, password: str, again: str) -> None:
    page = visitor.page
    page.get_by_label("New password", exact=True).fill(password)
    page.get_by_label("Repeat the new password").fill(again)
    page.get_by_role("button", name="Set the new password").click()


def test_forgotten_password_reset_by_mail_then_the_link_is_spent(
    visitor: Visitor, running: RunningSink
) -> None:
    page = visitor.page
    link = request_link(visitor, running)

    open_link(visitor, link)
    visitor.check("mail-reset-password")
    set_password(visitor, NEW_PASSWORD, NEW_PASSWORD)
    expect(page).to_have_url(visitor.base_url + "/login")
    expect(page.locator("main [role=status]")).to_have_text(RESET_DONE)
    visitor.check("mail-reset-done")

    # The old password no longer works; the new one does.
    send_login(visitor, PASSWORD)
    expect(page.locator("main [role=alert]")).to_have_text(INVALID)
    send_login(visitor, NEW_PASSWORD)
    expect(page).to_have_url(visitor.base_url + "/hello")

    # The same link a second time: refused, with the way to a new one.
    response = page.goto(link)
    assert response is not None
    assert response.status == 410
    assert page.url == visitor.base_url + "/reset_password"
    expect(page.get_by_role("heading", level=1)).to_have_text("This link does not work")
    expect(page.get_by_text(LINK_DEAD)).to_be_visible()
    expect(page.get_by_role("link", name="Request a new reset link")).to_have_attribute(
        "href", "/reset_password_request"
    )
    visitor.check("mail-reset-link-spent")


def test_a_mismatched_repeat_is_shown_and_keeps_the_link(
    visitor: Visitor, running: RunningSink
) -> None:
    page = visitor.page
    open_link(visitor, request_link(visitor, running))

    set_password(visitor, NEW_PASSWORD, NEW_PASSWORD + " but different")
    summary = page.locator(".error-summary")
    expect(summary).to_be_focused()
    expect(page).to_have_title("Error: Choose a new password · quartapp")
    expect(summary.get_by_role("link")).to_have_text(MISMATCH)
    expect(page.locator("#password2")).to_have_attribute("aria-invalid", "true")
    visitor.check("mail-reset-password-errors")

    # The link was not spent: the same page takes the right password twice.
    set_password(visitor, NEW_PASSWORD, NEW_PASSWORD)
    expect(page).to_have_url(visitor.base_url + "/login")
    expect(page.locator("main [role=status]")).to_have_text(RESET_DONE)
    send_login(visitor, NEW_PASSWORD)
    expect(page).to_have_url(visitor.base_url + "/hello")
