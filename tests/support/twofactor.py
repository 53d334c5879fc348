"""Helpers of the two-factor tests: enrolling and the second step through the real forms.

Codes are computed by pyotp from the key read off the enrolment page, as a phone
would. :func:`steady` keeps a test away from the end of a 30-second step, so the codes
it computes are judged against the step they were made for.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pyotp
from quart.wrappers import Response

from tests.conftest import PASSWORD, AuthActions, body, csrf_token

if TYPE_CHECKING:
    from quart.typing import TestClientProtocol

SECRET = re.compile(r'<code id="totp-secret">([A-Z2-7]+)</code>')
CODES = re.compile(r'<ol id="recovery-codes"[^>]*>(.*?)</ol>', re.S)
ITEM = re.compile(r"<li><code>([A-Z0-9-]+)</code></li>")
STEP = 30
SETTINGS = "/account/two-factor"
SECOND_STEP = "/login/two-factor"


@dataclass
class Shift:
    """Seconds added to real time on the clock codes are judged by (see :func:`now`)."""

    seconds: float = 0.0


# Set by tests/twofactor/conftest.py for the tests on an in-process app, which judges
# codes on the same shifted clock; zero for real servers and browsers.
SHIFT = Shift()


def now() -> float:
    """The time codes are made and judged by: real time, shifted in the in-process tests
    so that each starts a second into a 30-second step instead of sleeping to one."""
    return time.time() + SHIFT.seconds


def steady(margin: float = 4.0) -> None:
    """Wait, if need be, until the current time step has ``margin`` seconds left.

    A code made from one step and checked in the next is judged one step off; the
    tests that count steps start at least ``margin`` seconds before a boundary.
    """
    left = STEP - now() % STEP
    if left < margin:
        time.sleep(left + 0.05)


@dataclass
class Phone:
    """The authenticator app: codes of the key read off the page, by time step."""

    secret: str
    # The step current when the key was enrolled: codes are asked for relative to it.
    step: int = field(default_factory=lambda: int(now() // STEP))
    recovery_codes: list[str] = field(default_factory=list)

    def code(self, offset: int = 0) -> str:
        """The code of step ``self.step + offset``."""
        return pyotp.TOTP(self.secret).at((self.step + offset) * STEP)


async def post_form(client: TestClientProtocol, path: str, **fields: str) -> Response:
    """POST ``fields`` to ``path`` with the CSRF token read from the page at ``path``."""
    token = await csrf_token(client, path)
    return await client.post(path, form={**fields, "csrf_token": token})


def secret_on(page: str) -> str:
    found = SECRET.search(page)
    assert found, "no key on the enrolment page"
    return found.group(1)


def recovery_codes_on(page: str) -> list[str]:
    found = CODES.search(page)
    assert found, "no recovery codes on the page"
    return ITEM.findall(found.group(1))


async def enrol(client: TestClientProtocol) -> Phone:
    """Turn TOTP on for the logged-in user with a code of the step before this one.

    The step before: the code that turns TOTP on is used up, and the login tests that
    follow need the current step's and the next one's.
    """
    steady()
    page = await body(await client.get(SETTINGS))
    phone = Phone(secret_on(page))
    response = await post_form(client, SETTINGS, code=phone.code(-1))
    assert response.status_code == 200, await body(response)
    phone.recovery_codes = recovery_codes_on(await body(response))
    return phone


async def enrolled(auth: AuthActions, username: str = "alice") -> Phone:
    """The user logs in, turns TOTP on, and logs out."""
    await auth.login(username)
    phone = await enrol(auth.client)
    await auth.logout()
    return phone


async def second_step(client: TestClientProtocol, code: str, path: str = SECOND_STEP) -> Response:
    """Enter ``code`` on the second step's page."""
    return await post_form(client, path, code=code)


async def sign_in(
    auth: AuthActions,
    code: str,
    *,
    remember: bool = False,
    username: str = "alice",
    password: str = PASSWORD,
) -> Response:
    """Both steps: the password, then ``code``."""
    first = await auth.login(username, password, remember=remember)
    assert first.status_code == 302
    assert first.headers["Location"] == SECOND_STEP
    return await second_step(auth.client, code)


def flashed(page: str) -> list[str]:
    return re.findall(r'<div class="notice[^"]*"[^>]*>\s*<p>(.*?)</p>', page, re.S)


def unpack(rows: list[tuple[Any, ...]]) -> Any:
    ((value,),) = rows
    return value
