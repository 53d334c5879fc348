"""The two-factor tests on an in-process app judge codes on a clock of their own."""

from __future__ import annotations

import time

import pytest

from quartapp.twofactor import totp
from tests.support import twofactor


@pytest.fixture(autouse=True)
def totp_clock(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Start the test a second into a 30-second step, for the app and the test alike.

    A test that counts steps must not cross a step's end; ``steady()`` would sleep up
    to 4 s to start a fresh step (one test in eight). Here the time the app judges
    codes by (``totp.matching_step``'s ``now``) and the one the test makes them by
    (``twofactor.now()``) are shifted alike, by under 30 s, so the step is fresh at
    once; everything else in the app keeps real time. Real servers and browsers keep
    real time, and ``steady()`` waits for them.
    """
    if "app" not in request.fixturenames:  # its own app, a real server, or no app
        return
    shift = (1.0 - time.time()) % twofactor.STEP
    monkeypatch.setattr(twofactor.SHIFT, "seconds", shift)
    judge = totp.matching_step

    def shifted(secret: str, code: str, now: float) -> int | None:
        return judge(secret, code, now + shift)

    monkeypatch.setattr(totp, "matching_step", shifted)
