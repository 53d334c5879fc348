"""The login flow in a real Chromium against a real hypercorn, as a new user meets it.

Every page the tests reach is screenshotted at desktop and phone sizes and checked
with axe-core (``visitor.check``); any console error or uncaught exception, a CSP
violation included, fails the test. Run without them: ``pytest -m "not browser"``.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterator

import pytest
from itsdangerous.encoding import base64_decode, bytes_to_int
from playwright.sync_api import Browser, Locator, Page, expect
from playwright.sync_api import Error as PlaywrightError

from tests.support.browser import PASSWORD, USERNAME, Visitor, sign_in, visit
from tests.support.server import Server, free_port, hypercorn_command, running

pytestmark = [pytest.mark.browser, pytest.mark.server]

INVALID = "Invalid Credentials. Please try again."
LOGIN_FIRST = "You need to login first."
LOGGED_OUT = "You were logged out"
EXPIRED = "The form expired. Please try again."
# The CSS custom property --error, as getComputedStyle reports it.
ERROR_RED = "rgb(176, 0, 32)"
TAP = 44
# The short-lived server's form lifetime, in seconds (see short_lived_forms).
FORM_LIFETIME = 1
# Past the moment a form's token expires: the server reads the clock after the click.
EXPIRY_MARGIN = 0.2


def test_public_pages_and_not_found(visitor: Visitor) -> None:
    for path, name in (("/", "home"), ("/welcome", "welcome")):
        assert visitor.goto(path).status == 200
        expect(visitor.page.get_by_role("link", name="quartapp")).to_be_visible()
        expect(visitor.page.locator("footer")).to_contain_text("quartapp")
        visitor.check(name)

    response = visitor.goto("/no/such/page")

    assert response.status == 404
    expect(visitor.page).to_have_title("Page not found · quartapp")
    expect(visitor.page.get_by_role("link", name="Go to the home page")).to_be_visible()
    visitor.check("not-found")


def test_the_header_is_one_row_at_desktop_width_and_the_current_link_moves_nothing(
    visitor: Visitor,
) -> None:
    page = visitor.page
    page.set_viewport_size({"width": 1280, "height": 800})
    nav = page.get_by_role("navigation")
    places = {}
    for path in ("/", "/welcome", "/login"):
        visitor.goto(path)
        places[path] = [
            nav.get_by_role("link", name=name, exact=True).bounding_box()
            for name in ("Home", "Welcome", "Hello", "Sign in")
        ]
    # The current page's link is marked without growing: nothing beside it moves.
    assert places["/"] == places["/welcome"] == places["/login"]

    sign_in(visitor)
    parts = [
        page.get_by_role("link", name="quartapp"),
        nav.get_by_role("link", name="Home"),
        nav.get_by_text(f"Signed in as {USERNAME}"),
        nav.get_by_role("link", name="Account"),
        nav.get_by_role("button", name="Log out"),
    ]
    middles = []
    for part in parts:
        box = part.bounding_box()
        assert box is not None
        middles.append(box["y"] + box["height"] / 2)
    # Brand, links and the user block in one row.
    assert max(middles) - min(middles) < 2, middles


def header_rows(page: Page) -> int:
    """How many rows the header's links and buttons sit on (their distinct tops)."""
    tops = page.locator(".site-header").evaluate(
        """header => [...header.querySelectorAll("a, button")]
            .filter(element => element.offsetParent !== null)
            .map(element => Math.round(element.getBoundingClientRect().top))"""
    )
    rows: list[int] = []
    for top in sorted(tops):
        if not rows or top - rows[-1] > 4:
            rows.append(top)
    return len(rows)


def test_the_signed_in_header_is_one_row_on_a_phone(visitor: Visitor) -> None:
    page = visitor.page
    sign_in(visitor)
    page.set_viewport_size({"width": 390, "height": 844})
    visitor.goto("/account/sessions")

    header = page.locator(".site-header")
    box = header.bounding_box()
    assert box is not None
    assert header_rows(page) == 1
    # Nor does any link or button take two lines (44 px is one line's tap target).
    heights = (
        page.locator(".site-header")
        .locator("a, button")
        .evaluate_all(
            "items => items.filter(item => item.offsetParent !== null)"
            ".map(item => item.getBoundingClientRect().height)"
        )
    )
    assert max(heights) <= 44, heights
    # And the last of them ends inside the page's side margin, not at the screen's edge.
    right = page.locator(".site-header").evaluate(
        "header => Math.max(...[...header.querySelectorAll('a, button')]"
        ".filter(item => item.offsetParent !== null)"
        ".map(item => item.getBoundingClientRect().right))"
    )
    assert right <= 390 - 8, right
    visitor.check("header-signed-in")
    assert box["height"] <= 60, f"the header is {box['height']} px high at 390 px wide"
    # Nothing is cut off or scrolls sideways, and the name is still there for screen readers.
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    expect(header).to_contain_text(f"Signed in as {USERNAME}")
    for name in ("quartapp", "Welcome", "Hello", "Account"):
        expect(header.get_by_role("link", name=name, exact=True)).to_be_visible()
    expect(header.get_by_role("button", name="Log out")).to_be_visible()


def test_keyboard_only_login_from_a_protected_page(visitor: Visitor) -> None:
    page = visitor.page
    visitor.goto("/hello")
    expect(page.locator("main [role=status]")).to_have_text(LOGIN_FIRST)
    expect(page.locator("#username")).to_be_focused()
    visitor.check("login")

    page.keyboard.type(USERNAME)
    page.keyboard.press("Tab")
    expect(page.locator("#password")).to_be_focused()
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")

    expect(page).to_have_url(visitor.base_url + "/hello")
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Hello, {USERNAME}!")
    visitor.check("hello")


def test_back_button_after_logout_shows_nothing_private(visitor: Visitor) -> None:
    page = visitor.page
    sign_in(visitor)
    visitor.goto("/logout")
    visitor.check("logout-confirm")
    page.get_by_role("link", name="Stay signed in").click()
    expect(page).to_have_url(visitor.base_url + "/hello")

    page.get_by_role("navigation").get_by_role("button", name="Log out").click()
    expect(page.locator("main [role=status]")).to_have_text(LOGGED_OUT)
    visitor.check("logged-out")
    page.go_back()

    # no-store: the browser asks again, and the server sends it to the login page.
    expect(page).to_have_url(re.compile(r"/login\?next=(/|%2F)hello$"))
    expect(page.locator("body")).not_to_contain_text(f"Hello, {USERNAME}")
    expect(page.locator("main [role=status]")).to_have_text(LOGIN_FIRST)


def test_empty_submit_focuses_the_error_summary_whose_links_focus_the_fields(
    visitor: Visitor,
) -> None:
    page = visitor.page
    visitor.goto("/login")
    # The page's autofocus, before the keyboard acts: under load, an Enter sent before
    # it landed went nowhere (the form never submitted) and the summary never came.
    expect(page.locator("#username")).to_be_focused()

    page.keyboard.press("Enter")

    summary = page.locator(".error-summary")
    expect(summary).to_be_focused()
    expect(summary.get_by_role("heading")).to_have_text("There is a problem")
    expect(page).to_have_title("Error: Sign in · quartapp")
    for field in ("#username", "#password"):
        expect(page.locator(field)).to_have_attribute("aria-invalid", "true")
        expect(page.locator(field)).to_have_css("border-top-color", ERROR_RED)
        expect(page.locator(f"{field}-errors")).to_have_css("color", ERROR_RED)
    visitor.check("login-errors")

    summary.get_by_role("link", name="Enter your password").click()
    expect(page.locator("#password")).to_be_focused()
    page.keyboard.press("Shift+Tab")
    expect(page.locator("#username")).to_be_focused()


def test_wrong_passwords_then_lockout_page_says_how_long(visitor: Visitor) -> None:
    page = visitor.page
    # Another name than the one the other tests log in with: the lockout is per account.
    name = "mallory"
    visitor.goto("/login?next=/hello")
    for attempt in range(5):
        page.get_by_label("Username").fill(name)
        page.get_by_label("Password", exact=True).fill(f"wrong password {attempt}")
        page.get_by_role("button", name="Sign in").click()
        notice = page.locator("main [role=alert]")
        expect(notice).to_have_text(INVALID)
        expect(notice).to_be_focused()
        expect(page.get_by_label("Username")).to_have_value(name)
        expect(page.get_by_label("Password", exact=True)).to_have_value("")
        if attempt == 0:
            visitor.check("login-wrong-password")

    page.get_by_label("Password", exact=True).fill("wrong again")
    with page.expect_response(lambda response: response.request.method == "POST") as sent:
        page.get_by_role("button", name="Sign in").click()

    response = sent.value
    assert response.status == 429
    assert int(response.headers["retry-after"]) > 14 * 60
    expect(page).to_have_title("Too many attempts · quartapp")
    expect(page.locator("main")).to_contain_text("Try again in 15 minutes.")
    visitor.check("lockout")
    page.get_by_role("link", name="Back to the sign-in page").click()
    expect(page).to_have_url(re.compile(r"/login\?next=(/|%2F)hello$"))
    expect(page.get_by_label("Username")).to_be_visible()


def test_show_password_button_and_caps_lock_hint(visitor: Visitor) -> None:
    page = visitor.page
    visitor.goto("/login")
    password = page.get_by_label("Password", exact=True)
    password.fill("typed secret")

    page.get_by_role("button", name="Show password").click()

    expect(password).to_have_attribute("type", "text")
    page.get_by_role("button", name="Hide password").click()
    expect(password).to_have_attribute("type", "password")
    hint = page.get_by_text("Caps Lock is on.")
    expect(hint).to_be_hidden()
    password.dispatch_event("keydown", {"key": "A", "modifierCapsLock": True})
    expect(hint).to_be_visible()
    visitor.check("login-caps-lock")
    password.dispatch_event("keyup", {"key": "A", "modifierCapsLock": False})
    expect(hint).to_be_hidden()


def assert_tappable(targets: list[Locator]) -> None:
    for target in targets:
        box = target.bounding_box()
        assert box is not None, f"{target} is not on the page"
        assert box["height"] >= TAP, f"{target} is {box['height']}px tall"
        assert box["width"] >= TAP, f"{target} is {box['width']}px wide"


def test_tap_targets_on_a_phone_are_at_least_44px(visitor: Visitor) -> None:
    page = visitor.page
    page.set_viewport_size({"width": 390, "height": 844})
    visitor.goto("/login")
    navigation = page.get_by_role("navigation")

    assert_tappable(
        [
            page.get_by_role("link", name="quartapp"),
            *navigation.get_by_role("link").all(),
            page.get_by_role("button", name="Sign in"),
            page.get_by_role("button", name="Show password"),
            page.locator("label[for=remember_me]"),
        ]
    )
    sign_in(visitor)
    assert_tappable([*navigation.get_by_role("link").all(), navigation.get_by_role("button")])


def test_without_javascript_the_login_page_works_the_same(
    browser: Browser, server: Server, request: pytest.FixtureRequest
) -> None:
    context = browser.new_context(java_script_enabled=False)
    try:
        visitor = Visitor(context.new_page(), server.base_url, request.node.name)
        page = visitor.page
        visitor.goto("/login")
        expect(page.locator("#username")).to_be_focused()
        expect(page.get_by_role("button", name="Show password")).to_have_count(0)

        page.get_by_role("button", name="Sign in").click()
        expect(page.locator(".error-summary")).to_be_focused()  # the autofocus attribute
        page.get_by_label("Username").fill(USERNAME)
        page.get_by_label("Password", exact=True).fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()

        expect(page).to_have_url(server.base_url + "/hello")
        visitor.assert_no_errors()
    finally:
        context.close()


@pytest.fixture(scope="module")
def short_lived_server(
    server: Server, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """A second server on the module server's database and keys, whose forms expire a
    second after they are rendered; its tests each start from a new page and change
    nothing that another one reads.

    No form on it must succeed (itsdangerous counts whole seconds, so a form filled and
    sent within a second of its page could already be refused on a busy machine): a
    test that needs alice signed in signs in on the module's server, whose session the
    cookie carries here (cookies go to every port of 127.0.0.1).
    """
    logs = tmp_path_factory.mktemp("short-lived-forms")
    env = {**server.env, "QUARTAPP_WTF_CSRF_TIME_LIMIT": str(FORM_LIFETIME)}
    port = free_port()
    with running(hypercorn_command(port), env, port, logs) as started:
        started.wait_healthy()
        yield started


@pytest.fixture
def short_lived_forms(
    page: Page, short_lived_server: Server, request: pytest.FixtureRequest
) -> Iterator[Visitor]:
    """A visitor on the server whose forms expire a second after they are rendered."""
    yield from visit(page, short_lived_server, request)


def wait_until_the_form_expires(page: Page) -> None:
    """Wait until the page's form is past its lifetime, and no longer.

    Its CSRF token carries the whole second it was signed in, and itsdangerous refuses
    it once the whole seconds since then exceed the lifetime: from that second plus
    the lifetime plus one. A fixed wait long enough for the worst case (a form signed
    at the end of its second) waits a second too long for most.
    """
    token = page.locator("input[name=csrf_token]").first.get_attribute("value")
    assert token is not None
    signed = bytes_to_int(base64_decode(token.rsplit(".", 2)[1]))
    expires = signed + FORM_LIFETIME + 1 + EXPIRY_MARGIN
    page.wait_for_timeout(max(0.0, expires - time.time()) * 1000)


def test_expired_login_form_keeps_the_username_and_says_what_happened(
    short_lived_forms: Visitor,
) -> None:
    visitor, page = short_lived_forms, short_lived_forms.page
    visitor.goto("/login")
    page.get_by_label("Username").fill(USERNAME)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    wait_until_the_form_expires(page)

    with page.expect_response(lambda response: response.request.method == "POST") as sent:
        page.get_by_role("button", name="Sign in").click()

    assert sent.value.status == 400
    expect(page).to_have_title("Form expired · Sign in · quartapp")
    expect(page.locator("main [role=alert]")).to_have_text(EXPIRED)
    expect(page.locator("main [role=alert]")).to_be_focused()
    expect(page.locator("body")).not_to_contain_text("Bad request")
    expect(page.get_by_label("Username")).to_have_value(USERNAME)
    expect(page.get_by_label("Password", exact=True)).to_have_value("")
    visitor.check("expired-form")


def test_expired_logout_form_says_so_and_links_back(
    short_lived_forms: Visitor, server: Server, request: pytest.FixtureRequest
) -> None:
    visitor, page = short_lived_forms, short_lived_forms.page
    # On the module's server, whose forms last: see short_lived_server. The page is the
    # same, so the fixture's visitor still hears its console.
    sign_in(Visitor(page, server.base_url, request.node.name))
    visitor.goto("/logout")
    wait_until_the_form_expires(page)

    with page.expect_response(lambda response: response.request.method == "POST") as sent:
        page.get_by_role("main").get_by_role("button", name="Log out").click()

    assert sent.value.status == 400
    expect(page).to_have_title("Form expired · quartapp")
    expect(page.locator("main")).to_contain_text("nothing was done")
    expect(page.get_by_role("banner")).to_contain_text(f"Signed in as {USERNAME}")
    visitor.check("expired-logout")
    page.get_by_role("link", name="Open the form again").click()
    expect(page).to_have_url(visitor.base_url + "/logout")
    expect(page.get_by_role("heading", level=1)).to_have_text("Log out")


def test_console_check_catches_a_csp_violation(visitor: Visitor) -> None:
    # The harness itself: an inline script, which the CSP forbids, must be reported.
    visitor.goto("/login")

    refusal = "Content Security Policy"

    # Playwright may report the refusal as an error of its own, too.
    with (
        visitor.page.expect_console_message(lambda message: refusal in message.text),
        contextlib.suppress(PlaywrightError),
    ):
        visitor.page.add_script_tag(content="document.title = 'inline'")

    assert visitor.page.title() != "inline"
    assert any(refusal in error for error in visitor.errors), visitor.errors
    visitor.errors.clear()
