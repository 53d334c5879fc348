"""Issue 12's findings on ratings and logins per user, replayed on a real hypercorn.

Each runs on SQLite and on PostgreSQL, against a production server with one worker,
which the tests share (one per database), each as a user of its own.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import DATABASES, PASSWORD
from tests.support.server import Browser, Server
from tests.support.shared import Shared, shared_server

pytestmark = pytest.mark.server
WRONG = "wrong password, quite long"
WRONG_CURRENT = "Your current password is wrong."
LOGINS_PER_USER_MAX = 3


@pytest.fixture(scope="module", params=DATABASES)
def shared(request: pytest.FixtureRequest) -> Iterator[Shared]:
    """One server per database, at most 3 logins per user."""
    settings = {"QUARTAPP_LOGINS_PER_USER_MAX": str(LOGINS_PER_USER_MAX)}
    with shared_server(request, request.param, workers=1, **settings) as started:
        yield started


def log_in(server: Server, username: str) -> Browser:
    browser = Browser(server.base_url)
    form = {"username": username, "password": PASSWORD, "csrf_token": browser.csrf_token("/login")}
    page = browser.post("/login", form)
    assert (page.status, page.location) == (302, "/hello"), page.text
    return browser


def change_password(browser: Browser, current: str, new: str) -> tuple[int, str]:
    form = {
        "current_password": current,
        "new_password": new,
        "new_password2": new,
        "csrf_token": browser.csrf_token("/account/password"),
    }
    page = browser.post("/account/password", form)
    return page.status, page.text


def test_wrong_current_passwords_are_judged_before_the_new_one(shared: Shared) -> None:
    # Before, a guessable new password was refused on its rating first: never a wrong
    # current password, never a 429, and a rating for each request.
    browser = log_in(shared.server, shared.new_user())

    answers = [change_password(browser, WRONG, "passwordpassword") for _ in range(6)]

    assert [status for status, _ in answers] == [200] * 5 + [429]
    assert all(WRONG_CURRENT in text and "too easy" not in text for _, text in answers[:5])


def test_a_login_past_the_cap_logs_the_oldest_device_out(shared: Shared) -> None:
    server, user = shared.server, shared.new_user()

    browsers = [log_in(server, user) for _ in range(LOGINS_PER_USER_MAX + 1)]

    statuses = [browser.get("/hello").status for browser in browsers]
    assert statuses == [302, 200, 200, 200]
    page = browsers[-1].get("/account/sessions").text
    assert page.count('class="session-title"') == 3
    assert "You can stay signed in on up to 3 devices; a new sign-in ends the oldest." in page
