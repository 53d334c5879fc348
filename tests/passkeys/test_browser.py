"""Passkeys in a real Chromium against a real hypercorn, with Chromium's virtual authenticator.

The authenticator is the one DevTools offers (``WebAuthn.addVirtualAuthenticator`` over
CDP: CTAP2, internal transport, resident keys, user verification), so the browser's own
WebAuthn code makes the credentials and signs the assertions; the app checks them with
py_webauthn as it would a phone's. A person adds a passkey, signs out, signs in with the
passkey alone, confirms a stale login with it and removes it; a forged signature is
refused; and without JavaScript the login page says passkeys need it, and the password
still works. Each page gets ``visitor.check``.

WebAuthn refuses an IP address as a relying party, so the pages are visited at
``localhost`` (the server still listens on 127.0.0.1 only: Chromium resolves
``localhost`` to loopback itself, and plain HTTP there is a secure context).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, CDPSession, Page, expect

from tests.support.browser import (
    PASSWORD,
    USERNAME,
    Visitor,
    database_path,
    restore,
    sign_in,
)
from tests.support.pg import PostgresServer
from tests.support.server import Server

pytestmark = [pytest.mark.browser, pytest.mark.server]

ADDED = "Your passkey “This laptop” was added."
NOT_VERIFIED = "The passkey could not be verified. Please try again."
# With its UI off, Chromium's virtual authenticator answers a conditional request (the
# username box's passkey suggestions) at once, as if the person picked the passkey. To
# test the button, the page is told what a browser without conditional UI says.
NO_CONDITIONAL_UI = (
    "PublicKeyCredential.isConditionalMediationAvailable = () => Promise.resolve(false);"
)


@dataclass
class Served:
    """The test's server, and SQL on its SQLite database."""

    server: Server

    def sql(self, statement: str) -> list[tuple[Any, ...]]:
        with closing(sqlite3.connect(database_path(self.server))) as connection:
            rows = connection.execute(statement).fetchall()
            connection.commit()
        return rows


@pytest.fixture
def served_app(server: Server, served_sqlite_template: Path) -> Served:
    """The module's server, its database put back before each test: the tests add
    passkeys and count the logins and passkeys in it."""
    restore(server, served_sqlite_template)
    return Served(server)


@pytest.fixture
def page(context: BrowserContext) -> Page:
    """A page in a context of the test's own, not the worker's shared page: the
    virtual authenticator and the init scripts stay with a page, and another test
    must not meet them."""
    return context.new_page()


@pytest.fixture
def visitor(page: Page, served_app: Served, request: pytest.FixtureRequest) -> Iterator[Visitor]:
    page.set_default_timeout(10_000)
    base = served_app.server.base_url.replace("127.0.0.1", "localhost")
    visitor = Visitor(page, base, request.node.name)
    yield visitor
    visitor.assert_no_errors()


@dataclass
class Authenticator:
    """A virtual platform authenticator in the page's browser context."""

    cdp: CDPSession
    id: str

    def credentials(self) -> list[dict[str, Any]]:
        found = self.cdp.send("WebAuthn.getCredentials", {"authenticatorId": self.id})
        return list(found["credentials"])

    def forge_signatures(self) -> None:
        self.cdp.send(
            "WebAuthn.setResponseOverrideBits",
            {"authenticatorId": self.id, "isBogusSignature": True},
        )


@pytest.fixture
def authenticator(page: Page) -> Authenticator:
    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable", {"enableUI": False})
    added = cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
                "automaticPresenceSimulation": True,
            }
        },
    )
    return Authenticator(cdp, added["authenticatorId"])


def log_out(visitor: Visitor) -> None:
    visitor.page.get_by_role("navigation").get_by_role("button", name="Log out").click()
    expect(visitor.page).to_have_url(visitor.base_url + "/login")


def add_passkey(visitor: Visitor, *, check: bool = False) -> None:
    """From a fresh login: the sessions page, the passkeys page, "Add a passkey"."""
    page = visitor.page
    visitor.goto("/account/sessions")
    page.get_by_role("link", name="Manage your passkeys").click()
    expect(page).to_have_url(visitor.base_url + "/account/passkeys")
    expect(page.get_by_text("You have no passkeys yet.")).to_be_visible()
    if check:
        visitor.check("passkeys-none")
    page.get_by_role("link", name="Add a passkey").click()
    expect(page).to_have_url(visitor.base_url + "/account/passkeys/new")
    button = page.get_by_role("button", name="Add a passkey")
    expect(button).to_be_visible()
    if check:
        visitor.check("passkeys-new")
    page.get_by_label("Name (optional)").fill("This laptop")
    button.click()
    expect(page).to_have_url(visitor.base_url + "/account/passkeys")
    expect(page.locator("main [role=status]")).to_have_text(ADDED)


def test_add_a_passkey_sign_in_with_it_alone_then_remove_it(
    visitor: Visitor, authenticator: Authenticator, served_app: Served
) -> None:
    page = visitor.page
    page.add_init_script(NO_CONDITIONAL_UI)
    sign_in(visitor)
    add_passkey(visitor, check=True)
    expect(page.locator(".session-title")).to_have_text(["This laptop"])
    visitor.check("passkeys-list")
    [credential] = authenticator.credentials()
    assert credential["isResidentCredential"] is True
    assert credential["rpId"] == "localhost"

    log_out(visitor)
    expect(page.get_by_label("Username")).to_have_attribute("autocomplete", "username webauthn")
    expect(page.get_by_text("Signing in with a passkey needs JavaScript.")).to_be_hidden()
    visitor.check("login-with-passkey")
    page.get_by_role("button", name="Sign in with a passkey").click()
    expect(page).to_have_url(visitor.base_url + "/hello")
    expect(page.locator("main [role=status]")).to_have_text(f"You were signed in as {USERNAME}.")
    visitor.goto("/account/sessions")
    expect(page.locator(".session-method")).to_have_text(["Passkey"])
    assert served_app.sql("SELECT method FROM logins") == [("passkey",)]
    assert served_app.sql("SELECT sign_count > 0, last_used IS NOT NULL FROM passkeys") == [(1, 1)]

    visitor.goto("/account/passkeys")
    page.get_by_role("link", name="Rename This laptop").click()
    expect(page.get_by_label("Name")).to_be_focused()
    expect(page.get_by_label("Name")).to_have_value("This laptop")
    visitor.check("passkeys-rename")
    page.get_by_label("Name").fill("Work laptop")
    page.get_by_role("button", name="Save the name").click()
    expect(page.locator("main [role=status]")).to_have_text(
        "The passkey is now called “Work laptop”."
    )

    # A stale login confirms with the passkey before removing it.
    served_app.sql(f"UPDATE logins SET verified_at = {time.time() - 3600}")
    page.get_by_role("link", name="Remove Work laptop").click()
    expect(page).to_have_url(visitor.base_url + "/login/confirm?next=/account/passkeys/1/remove")
    confirm = page.get_by_role("button", name="Confirm with a passkey")
    expect(confirm).to_be_visible()
    visitor.check("confirm-with-passkey")
    confirm.click()
    expect(page).to_have_url(visitor.base_url + "/account/passkeys/1/remove")
    expect(page.get_by_role("heading", level=1)).to_have_text("Remove the passkey “Work laptop”?")
    visitor.check("passkeys-remove")
    page.get_by_role("button", name="Remove the passkey").click()
    expect(page).to_have_url(visitor.base_url + "/account/passkeys")
    expect(page.locator("main [role=status]")).to_have_text(
        "The passkey “Work laptop” was removed."
    )
    expect(page.get_by_text("You have no passkeys yet.")).to_be_visible()
    assert served_app.sql("SELECT count(*) FROM passkeys") == [(0,)]


def test_the_username_box_offers_the_passkey(
    visitor: Visitor, authenticator: Authenticator, served_app: Served
) -> None:
    """Conditional mediation: the login page asks for a passkey once the person goes to
    the username box, and not before: a page view asks the server for nothing."""
    page = visitor.page
    sign_in(visitor)
    add_passkey(visitor)
    asked: list[str] = []
    page.on(
        "request",
        lambda request: asked.append(request.url) if "/passkey/options" in request.url else None,
    )
    log_out(visitor)
    expect(page.get_by_role("button", name="Sign in with a passkey")).to_be_visible()
    page.wait_for_load_state("networkidle")
    assert asked == []
    # The username box's request is answered by the authenticator: no password.
    page.get_by_label("Username").click()
    expect(page).to_have_url(visitor.base_url + "/hello")
    expect(page.locator("main [role=status]")).to_have_text(f"You were signed in as {USERNAME}.")
    assert served_app.sql("SELECT method FROM logins") == [("passkey",)]
    assert len(asked) == 1


def test_a_forged_signature_is_refused(visitor: Visitor, authenticator: Authenticator) -> None:
    page = visitor.page
    page.add_init_script(NO_CONDITIONAL_UI)
    sign_in(visitor)
    add_passkey(visitor)
    log_out(visitor)

    authenticator.forge_signatures()
    # The refusal is a 400, which Chromium reports on the console; asserted here instead.
    visitor.documents.add(visitor.base_url + "/login/passkey")
    with page.expect_response(visitor.base_url + "/login/passkey") as answered:
        page.get_by_role("button", name="Sign in with a passkey").click()
    assert answered.value.status == 400
    status = page.locator("[data-passkey-status]")
    expect(status).to_have_text(NOT_VERIFIED)
    expect(page).to_have_url(visitor.base_url + "/login")
    expect(page.get_by_role("banner")).not_to_contain_text("Signed in")
    visitor.check("login-passkey-refused")


def test_without_javascript_the_password_still_signs_in(
    browser: Browser, served_app: Served
) -> None:
    context = browser.new_context(java_script_enabled=False)
    try:
        page = context.new_page()
        base = served_app.server.base_url.replace("127.0.0.1", "localhost")
        page.goto(base + "/login")
        expect(page.get_by_text("Signing in with a passkey needs JavaScript.")).to_be_visible()
        expect(page.get_by_role("button", name="Sign in with a passkey")).to_be_hidden()
        page.get_by_label("Username").fill(USERNAME)
        page.get_by_label("Password", exact=True).fill(PASSWORD)
        page.get_by_role("button", name="Sign in", exact=True).click()
        expect(page).to_have_url(base + "/hello")
        page.goto(base + "/account/passkeys/new")
        expect(page.get_by_text("Adding a passkey needs JavaScript.")).to_be_visible()
        expect(page.get_by_role("button", name="Add a passkey")).to_be_hidden()
    finally:
        context.close()


GENERIC = "Something went wrong with the passkey. Please try again."


@pytest.mark.postgres
def test_an_outage_says_nothing_until_the_passkey_button_is_used(
    page: Page,
    authenticator: Authenticator,
    stoppable_postgres: PostgresServer,
    outage_server: Server,
    request: pytest.FixtureRequest,
) -> None:
    """PostgreSQL stopped under the server: typing a username arms the browser's passkey
    suggestions, whose options request gets a 503, and the page stays quiet; the
    passkey button's own failure is said."""
    base = outage_server.base_url.replace("127.0.0.1", "localhost")
    visitor = Visitor(page, base, request.node.name)
    page.set_default_timeout(10_000)
    options = base + "/login/passkey/options"
    # The 503s are the outage this test makes; asserted here, not on the console.
    visitor.documents.add(options)
    visitor.goto("/login")
    status = page.locator("[data-passkey-status]")
    stoppable_postgres.stop("fast")
    try:
        # A click in the box arms them (one request); filling it types no key.
        with page.expect_response(options) as armed:
            page.get_by_label("Username").click()
        assert armed.value.status == 503
        page.get_by_label("Username").fill(USERNAME)
        # The page has read the answer once its own tasks after it have run.
        page.evaluate("() => new Promise(done => setTimeout(done, 50))")
        expect(status).to_be_hidden()
        expect(page.get_by_role("alert")).to_have_count(0)
        visitor.check("login-passkey-outage-quiet")

        with page.expect_response(options) as clicked:
            page.get_by_role("button", name="Sign in with a passkey").click()
        assert clicked.value.status == 503
        expect(status).to_have_text(GENERIC)
        expect(status).to_have_attribute("role", "alert")
    finally:
        stoppable_postgres.start()
    visitor.assert_no_errors()
