"""Sign-up in a real Chromium, against a real hypercorn and SMTP server.

Bob registers from the login page's link, is held on "Confirm your email address"
when he signs in before confirming, reads the mail the app's own sender delivers to
an aiosmtpd sink, opens its link, presses its one button, and signs in. Each page
gets ``visitor.check``: screenshots at desktop and phone sizes, and no axe-core
violations.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.support.browser import Visitor, served
from tests.support.server import Server, free_port
from tests.support.smtp import RunningSink, smtp_sink

pytestmark = [pytest.mark.browser, pytest.mark.server]

USERNAME = "bob"
ADDRESS = "bob@example.com"
PASSWORD = "a long and uncommon passphrase for bob"


@pytest.fixture
def running() -> Iterator[RunningSink]:
    """The SMTP server the app delivers to."""
    with smtp_sink() as started:
        yield started


@pytest.fixture
def server(
    tmp_path_factory: pytest.TempPathFactory,
    served_sqlite_template: Path,
    running: RunningSink,
) -> Iterator[Server]:
    """A server with registration open that sends its mail to the sink."""
    port = free_port()
    with served(
        tmp_path_factory.mktemp("browser-signup"),
        served_sqlite_template,
        port=port,
        QUARTAPP_REGISTRATION_OPEN="true",
        QUARTAPP_MAIL_URL=f"smtp://127.0.0.1:{running.port}",
        QUARTAPP_BASE_URL=f"http://127.0.0.1:{port}",
    ) as started:
        yield started


def sign_in(visitor: Visitor) -> None:
    page = visitor.page
    visitor.goto("/login")
    page.get_by_label("Username").fill(USERNAME)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()


def test_register_confirm_then_sign_in(visitor: Visitor, running: RunningSink) -> None:
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
    sign_in(visitor)
    expect(page).to_have_url(visitor.base_url + "/confirm_email")
    expect(page.get_by_role("heading", level=1)).to_have_text("Confirm your email address")
    expect(page.get_by_role("button", name="Send the email again")).to_be_visible()
    visitor.check("signup-confirm-needed")

    received = running.sink.wait_for_blocking(1)[0]
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
    sign_in(visitor)
    expect(page).to_have_url(visitor.base_url + "/hello")
