"""Sign-up to leaving, in a real Chromium, against a real hypercorn and SMTP server.

Bob registers from the login page's link, is held on "Confirm your email address"
when he signs in before confirming, reads the mail the app's own sender delivers to
an aiosmtpd sink, opens its link, presses its one button, and signs in. Then, from
the account page, he downloads his data, closes his account, gets the last email,
and his old password no longer signs in. Each page gets ``visitor.check``:
screenshots at desktop and phone sizes, and no axe-core violations.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.support.browser import Visitor, restore, send_login, wait_for_subject
from tests.support.server import Server
from tests.support.smtp import RunningSink

pytestmark = [pytest.mark.browser, pytest.mark.server]

USERNAME = "bob"
ADDRESS = "bob@example.com"
PASSWORD = "a long and uncommon passphrase for bob"


@pytest.fixture
def server(mail_server: Server, served_sqlite_template: Path, mail_sink: RunningSink) -> Server:
    """The worker's server with registration open that sends its mail to the sink, its
    database as the template has it and the sink emptied."""
    restore(mail_server, served_sqlite_template)
    mail_sink.sink.clear()
    return mail_server


def keys(value: object) -> Iterator[str]:
    """Every key in a JSON value, at any depth."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from keys(item)
    elif isinstance(value, list):
        for item in value:
            yield from keys(item)


def test_register_confirm_sign_in_export_then_close(
    visitor: Visitor, mail_sink: RunningSink
) -> None:
    page = visitor.page
    visitor.goto("/login")
    page.get_by_role("link", name="New user? Register").click()
    expect(page).to_have_url(visitor.base_url + "/register")
    expect(page).to_have_title("Register · quartapp")
    visitor.check("signup-register")

    page.get_by_label("Username").fill(USERNAME)
    page.get_by_label("Email").fill(ADDRESS)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Repeat Password").fill(PASSWORD)
    page.get_by_role("button", name="Register").click()
    expect(page).to_have_url(visitor.base_url + "/login")
    expect(page.locator("main [role=status]")).to_contain_text("Check your email")

    # Before confirming: signing in leads only to the page that asks for it.
    send_login(visitor, PASSWORD, USERNAME)
    expect(page).to_have_url(visitor.base_url + "/confirm_email")
    expect(page.get_by_role("heading", level=1)).to_have_text("Confirm your email address")
    expect(page.get_by_role("button", name="Send the email again")).to_be_visible()
    visitor.check("signup-confirm-needed")

    # A notice of an earlier module's test may still come in: this one is asked for.
    received = wait_for_subject(mail_sink, "Confirm your email address")
    assert received.recipients == [ADDRESS]
    text = received.message.get_body(("plain",))
    assert text is not None
    links = re.findall(
        re.escape(visitor.base_url) + r"/confirm_email/[A-Za-z0-9_-]+", text.get_content()
    )
    assert len(links) == 1, text.get_content()

    # The link opened where nobody is signed in (another browser, say): confirming
    # signs nobody in.
    page.context.clear_cookies()
    response = page.goto(links[0])
    assert response is not None
    assert response.status == 200
    visitor.check("signup-confirm")
    page.get_by_role("button", name="Confirm my email address").click()
    expect(page).to_have_url(visitor.base_url + "/login")
    expect(page.locator("main [role=status]")).to_contain_text("Your email address is confirmed")

    visitor.check("signup-confirmed")
    visitor.goto("/hello")
    expect(page).to_have_url(re.compile(re.escape(visitor.base_url) + r"/login\?next="))
    send_login(visitor, PASSWORD, USERNAME)
    expect(page).to_have_url(visitor.base_url + "/hello")

    # The account page's "Your data" links: first the download. A just-started login
    # is fresh enough for it.
    page.get_by_role("link", name="Account").click()
    expect(page).to_have_url(visitor.base_url + "/account")
    expect(page.get_by_role("heading", name="Your data")).to_be_visible()
    visitor.check("signup-account")
    export_url = visitor.base_url + "/account/export"
    with (
        page.expect_response(export_url) as answered,
        page.expect_download() as started,
    ):
        page.get_by_role("link", name="Download your data").click()
    headers = answered.value.headers
    assert headers["content-type"] == "application/json"
    assert headers["content-disposition"].startswith("attachment;")
    download = started.value
    assert download.suggested_filename == f"quartapp-{USERNAME}.json"
    path = download.path()
    raw = Path(path).read_text(encoding="utf-8")
    exported = json.loads(raw)
    assert exported["account"]["username"] == USERNAME
    assert exported["email"]["address"] == ADDRESS
    assert exported["email"]["confirmed"] is True
    # No password hash: not argon2's output anywhere, nor a key that would hold one
    # ("password" is a value: the login method).
    assert "$argon2" not in raw
    assert not [key for key in keys(exported) if "password" in key or "hash" in key]

    page.get_by_role("link", name="Close your account").click()
    expect(page).to_have_url(visitor.base_url + "/account/delete")
    expect(page).to_have_title("Close your account · quartapp")
    visitor.check("signup-close-account")
    page.get_by_label("Your username").fill(USERNAME)
    page.get_by_role("button", name="Close my account").click()
    expect(page).to_have_url(visitor.base_url + "/login")
    expect(page.locator("main [role=status]")).to_contain_text("Your account was closed")
    visitor.check("signup-account-closed")

    closed = wait_for_subject(mail_sink, "Your account was closed")
    assert closed.recipients == [ADDRESS]

    send_login(visitor, PASSWORD, USERNAME)
    expect(page).to_have_url(visitor.base_url + "/login")
    expect(page.locator("main")).to_contain_text("Invalid Credentials. Please try again.")
