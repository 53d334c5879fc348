"""A TOTP code works once across processes: two real hypercorn servers, one database.

Each runs on SQLite and on PostgreSQL, against production servers with one worker
each, so the two checks of one code are made by two processes.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.conftest import PASSWORD, Start
from tests.support.server import Browser, Server
from tests.support.twofactor import (
    SECOND_STEP,
    SETTINGS,
    Phone,
    recovery_codes_on,
    secret_on,
    steady,
)

pytestmark = pytest.mark.server
WRONG_CODE = "That code is wrong or was used already."


def post(browser: Browser, path: str, **fields: str) -> tuple[int, str | None, str]:
    page = browser.post(path, {**fields, "csrf_token": browser.csrf_token(path)})
    return page.status, page.location, page.text


def enter_password(server: Server) -> Browser:
    browser = Browser(server.base_url)
    status, location, _ = post(browser, "/login", username="alice", password=PASSWORD)
    assert (status, location) in {(302, "/hello"), (302, SECOND_STEP)}
    return browser


def test_a_code_accepted_by_one_process_is_refused_by_another(start: Start) -> None:
    with ThreadPoolExecutor(2) as pool:  # side by side: neither waits for the other's start
        first, second = pool.map(lambda _: start(workers=1), range(2))
    owner = enter_password(first)
    secret = secret_on(owner.get(SETTINGS).text)
    steady()
    phone = Phone(secret, step=int(time.time() // 30))
    status, _, text = post(owner, SETTINGS, code=phone.code(-1))
    assert status == 200
    assert len(recovery_codes_on(text)) == 10

    here = enter_password(first)
    assert post(here, SECOND_STEP, code=phone.code())[:2] == (302, "/hello")
    there = enter_password(second)
    status, _, text = post(there, SECOND_STEP, code=phone.code())
    assert status == 400
    assert WRONG_CODE in text
    assert there.get("/hello").status == 302
    # The next step's code, once: the second process takes it, and the first refuses it.
    assert post(there, SECOND_STEP, code=phone.code(1))[:2] == (302, "/hello")
    again = enter_password(first)
    assert post(again, SECOND_STEP, code=phone.code(1))[0] == 400
