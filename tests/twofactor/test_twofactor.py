"""TOTP through the real forms: enrolling, the second step of a login, and its rules.

Codes come from pyotp with the key read off the enrolment page. One test of each
statement the factor's rows decide (turning on, a code used once and under a race, the
pending login's age and end, a recovery code, turning off) runs on SQLite and
PostgreSQL (marked BOTH_DATABASES, the rule: tests/conftest.py). Pages, forms, and the
throttle's part (its statements are tested in tests/auth/test_throttle.py) run on SQLite.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from typing import TYPE_CHECKING, Any

import pyotp
import pytest
from quart import Quart

from quartapp import create_app
from quartapp.twofactor import recovery, totp
from quartapp.twofactor.login import EXPIRED, WRONG_CODE
from quartapp.twofactor.views import TURNED_OFF
from tests.conftest import (
    BOTH_DATABASES,
    PASSWORD,
    AuthActions,
    aquery,
    body,
    cookie_value,
    csrf_token,
    replay,
)
from tests.support.settings import DEFAULTS
from tests.support.twofactor import (
    SECOND_STEP,
    SETTINGS,
    enrol,
    enrolled,
    flashed,
    now,
    post_form,
    recovery_codes_on,
    second_step,
    secret_on,
    sign_in,
    steady,
    unpack,
)

if TYPE_CHECKING:
    from quart.typing import TestClientProtocol

WRONG = WRONG_CODE.replace("'", "&#39;")


async def factor_row(settings: dict[str, Any]) -> list[tuple[Any, ...]]:
    return await aquery(settings, "SELECT secret, confirmed_at, last_timecode FROM totp_factors")


async def assert_logged_out(client: TestClientProtocol) -> None:
    response = await client.get("/hello")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")


# Enrolling


async def test_the_enrolment_page_shows_a_new_key_and_its_qr_code(
    auth: AuthActions, client: TestClientProtocol, settings: dict[str, Any]
) -> None:
    await auth.login()
    response = await client.get(SETTINGS)
    page = await body(response)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    secret = secret_on(page)
    assert len(secret) == 32
    assert '<img class="totp-qr" src="/account/two-factor/qr.svg"' in page
    assert secret not in page.split('id="totp-secret"')[0]  # not in the QR code's URL
    # Shown in groups of four; #totp-secret keeps it whole for tools and the Copy button.
    groups = re.findall(r'<span class="totp-group">([A-Z2-7]{4})</span>', page)
    assert groups == [secret[i : i + 4] for i in range(0, 32, 4)]
    assert 'data-copy-from="totp-secret"' in page
    # The key is kept on the server, pending: the same one on every visit.
    assert await factor_row(settings) == [(secret, None, None)]
    assert secret_on(await body(await client.get(SETTINGS))) == secret

    qr = await client.get("/account/two-factor/qr.svg")
    assert qr.status_code == 200
    assert qr.mimetype == "image/svg+xml"
    assert qr.headers["Cache-Control"] == "no-store"
    # The QR code is the otpauth URI of this key, made on the server.
    expected = totp.qr_svg(totp.provisioning_uri(secret, "alice"))
    assert await qr.get_data() == expected
    assert b"<script" not in expected
    assert b"style=" not in expected


async def test_a_wrong_code_does_not_turn_totp_on(
    auth: AuthActions, client: TestClientProtocol, settings: dict[str, Any]
) -> None:
    await auth.login()
    secret = secret_on(await body(await client.get(SETTINGS)))
    steady()
    wrong = f"{(int(pyotp.TOTP(secret).at(now())) + 1) % 1_000_000:06d}"
    response = await post_form(client, SETTINGS, code=wrong)
    assert response.status_code == 400
    assert WRONG in await body(response)
    assert unpack(await aquery(settings, "SELECT confirmed_at FROM totp_factors")) is None
    # Not a code at all: a clear error, still 400.
    response = await post_form(client, SETTINGS, code="abcdef")
    assert response.status_code == 400
    assert "Enter the 6 digits" in await body(response)
    # Logging in again needs no code.
    await auth.logout()
    assert (await auth.login()).headers["Location"] == "/hello"


@BOTH_DATABASES
async def test_the_right_code_turns_totp_on_and_shows_ten_recovery_codes_once(
    auth: AuthActions, client: TestClientProtocol, settings: dict[str, Any]
) -> None:
    await auth.login()
    phone = await enrol(client)
    (secret, confirmed_at, last_timecode) = (await factor_row(settings))[0]
    assert secret == phone.secret
    assert confirmed_at is not None
    assert last_timecode == phone.step - 1  # the enrolment code is used up
    assert len(phone.recovery_codes) == 10
    assert len(set(phone.recovery_codes)) == 10
    assert all(len(code.replace("-", "")) == recovery.LENGTH for code in phone.recovery_codes)
    # Stored hashed only.
    stored = [row[0] for row in await aquery(settings, "SELECT code_hash FROM recovery_codes")]
    assert sorted(stored) == sorted(
        recovery.digest(code.replace("-", "")) for code in phone.recovery_codes
    )
    # The settings page says it is on, with no key and no codes on it.
    page = await body(await client.get(SETTINGS))
    assert "Two-factor authentication is on." in page
    assert "You have 10 unused recovery codes." in page
    assert 'id="totp-secret"' not in page
    assert 'id="recovery-codes"' not in page
    assert (await client.get("/account/two-factor/qr.svg")).status_code == 404


async def test_the_sessions_page_links_to_two_factor(
    auth: AuthActions, client: TestClientProtocol
) -> None:
    await auth.login()
    page = await body(await client.get("/account/sessions"))
    assert 'href="/account/two-factor"' in page


async def test_enrolling_needs_a_fresh_login(
    auth: AuthActions, client: TestClientProtocol, settings: dict[str, Any]
) -> None:
    await auth.login()
    await aquery(settings, f"UPDATE logins SET verified_at = {time.time() - 3600}")
    response = await client.get(SETTINGS)
    assert response.status_code == 302
    assert response.headers["Location"] == "/login/confirm?next=/account/two-factor"
    assert await factor_row(settings) == []


async def test_the_pages_need_a_login(client: TestClientProtocol) -> None:
    for path in (SETTINGS, "/account/two-factor/qr.svg", "/account/two-factor/disable"):
        response = await client.get(path)
        assert response.status_code == 302
        assert response.headers["Location"].startswith("/login?next=")


# The second step of a login


async def test_a_password_alone_logs_nobody_in(
    auth: AuthActions, client: TestClientProtocol, settings: dict[str, Any]
) -> None:
    await enrolled(auth)
    response = await auth.login()
    assert response.status_code == 302
    assert response.headers["Location"] == SECOND_STEP
    assert not [h for h in response.headers.getlist("Set-Cookie") if "device-" in h]
    assert unpack(await aquery(settings, "SELECT count(*) FROM logins")) == 0
    await assert_logged_out(client)
    page = await body(await client.get(SECOND_STEP))
    assert 'name="code"' in page
    assert "Enter your code" in page


@BOTH_DATABASES
async def test_a_totp_code_completes_the_login(
    auth: AuthActions, client: TestClientProtocol, settings: dict[str, Any]
) -> None:
    phone = await enrolled(auth)
    response = await sign_in(auth, phone.code())
    assert response.status_code == 302
    assert response.headers["Location"] == "/hello"
    assert [h for h in response.headers.getlist("Set-Cookie") if "device-" in h]
    assert await aquery(settings, "SELECT remember, method FROM logins") == [
        (False, "password+totp")
    ]
    hello = await client.get("/hello")
    assert hello.status_code == 200
    assert "You were signed in as alice." in await body(hello)
    assert await aquery(settings, "SELECT count(*) FROM pending_logins") == [(0,)]
    sessions = await body(await client.get("/account/sessions"))
    assert "Password and authenticator code" in sessions


async def test_next_is_carried_through_the_second_step(
    auth: AuthActions, client: TestClientProtocol
) -> None:
    phone = await enrolled(auth)
    first = await auth.login(path="/login?next=/account/sessions")
    assert first.headers["Location"] == "/login/two-factor?next=/account/sessions"
    response = await second_step(client, phone.code(), first.headers["Location"])
    assert response.headers["Location"] == "/account/sessions"


async def test_remember_me_is_carried_through_the_second_step(
    auth: AuthActions, client: TestClientProtocol, settings: dict[str, Any]
) -> None:
    phone = await enrolled(auth)
    response = await sign_in(auth, phone.code(), remember=True)
    assert response.headers["Location"] == "/hello"
    assert await aquery(settings, "SELECT remember FROM logins") == [(True,)]
    (session_cookie,) = [
        h for h in response.headers.getlist("Set-Cookie") if h.startswith("session=")
    ]
    assert "Expires=" in session_cookie  # a permanent session, as "remember me" makes


@BOTH_DATABASES
async def test_a_code_is_accepted_once(auth: AuthActions, client: TestClientProtocol) -> None:
    phone = await enrolled(auth)
    assert (await sign_in(auth, phone.code())).headers["Location"] == "/hello"
    await auth.logout()
    replayed = await sign_in(auth, phone.code())
    assert replayed.status_code == 400
    assert WRONG in await body(replayed)
    await assert_logged_out(client)
    # So is the code that turned TOTP on, and any code older than the last one.
    assert (await second_step(client, phone.code(-1))).status_code == 400
    # The next step's code is fresh.
    assert (await second_step(client, phone.code(1))).headers["Location"] == "/hello"


async def test_a_code_one_step_either_side_is_accepted_and_two_are_not(
    auth: AuthActions, client: TestClientProtocol
) -> None:
    # Enrolling took a step before this one (tests/support/twofactor.py: enrol).
    phone = await enrolled(auth)
    await auth.login()
    steady()
    phone.step = int(now() // 30)  # the steps below are counted from now
    assert (await second_step(client, phone.code(2))).status_code == 400
    assert (await second_step(client, phone.code(1))).headers["Location"] == "/hello"


def test_the_window_is_one_step_either_side() -> None:
    secret = pyotp.random_base32()
    now = 1_700_000_000.0
    step = int(now // 30)
    code = pyotp.TOTP(secret).at
    for offset in (-1, 0, 1):
        assert totp.matching_step(secret, code(now + 30 * offset), now) == step + offset
    for offset in (-3, -2, 2, 3):
        assert totp.matching_step(secret, code(now + 30 * offset), now) is None


@BOTH_DATABASES
async def test_two_requests_with_one_code_log_in_once(
    app: Quart, auth: AuthActions, settings: dict[str, Any]
) -> None:
    phone = await enrolled(auth)
    others = [AuthActions(app.test_client()) for _ in range(2)]
    for other in others:
        assert (await other.login()).headers["Location"] == SECOND_STEP
    tokens = [await csrf_token(other.client, SECOND_STEP) for other in others]
    code = phone.code()
    responses = await asyncio.gather(
        *(
            other.client.post(SECOND_STEP, form={"code": code, "csrf_token": token})
            for other, token in zip(others, tokens, strict=True)
        )
    )
    assert sorted(response.status_code for response in responses) == [302, 400]
    assert unpack(await aquery(settings, "SELECT count(*) FROM logins")) == 1


async def test_a_code_used_on_one_instance_is_refused_by_another(
    app: Quart, auth: AuthActions, settings: dict[str, Any]
) -> None:
    phone = await enrolled(auth)
    assert (await sign_in(auth, phone.code())).headers["Location"] == "/hello"
    # A second app on the same database: another process, another dyno.
    other = create_app(settings)
    async with other.test_app():
        there = AuthActions(other.test_client())
        replayed = await sign_in(there, phone.code())
        assert replayed.status_code == 400
        assert WRONG in await body(replayed)
        fresh = await second_step(there.client, phone.code(1))
        assert fresh.headers["Location"] == "/hello"
    # And the step the other instance accepted is refused back here.
    await auth.logout()
    assert (await sign_in(auth, phone.code(1))).status_code == 400


# The pending login


@BOTH_DATABASES
async def test_the_pending_login_expires(
    auth: AuthActions, client: TestClientProtocol, settings: dict[str, Any]
) -> None:
    phone = await enrolled(auth)
    await auth.login()
    await aquery(settings, f"UPDATE pending_logins SET expires_at = {time.time() - 1}")
    token = await csrf_token(client, "/login")  # the step's page itself sends us back
    response = await client.post(SECOND_STEP, form={"code": phone.code(), "csrf_token": token})
    assert response.status_code == 302
    assert response.headers["Location"] == "/login"
    assert EXPIRED in flashed(await body(await client.get("/login")))
    await assert_logged_out(client)
    # The code was not spent on it.
    assert (await sign_in(auth, phone.code())).headers["Location"] == "/hello"


async def test_the_pending_login_lasts_five_minutes(
    auth: AuthActions, settings: dict[str, Any]
) -> None:
    await enrolled(auth)
    before = time.time()
    await auth.login()
    expires_at = unpack(await aquery(settings, "SELECT expires_at FROM pending_logins"))
    assert before + 300 <= expires_at <= time.time() + 300


async def test_the_pending_login_is_bound_to_its_browser(
    app: Quart, auth: AuthActions, client: TestClientProtocol
) -> None:
    phone = await enrolled(auth)
    await auth.login()
    # Another browser, with a session of its own but not this one's pending token.
    stranger = app.test_client()
    await post_form(stranger, "/login", username="x")  # a session of its own
    page = await stranger.get(SECOND_STEP)
    assert page.headers["Location"] == "/login"
    token = await csrf_token(stranger, "/login")
    response = await stranger.post(SECOND_STEP, form={"code": phone.code(), "csrf_token": token})
    assert response.status_code == 302
    assert response.headers["Location"] == "/login"
    await assert_logged_out(stranger)
    # The owner's browser still completes it with the same code.
    assert (await second_step(client, phone.code())).headers["Location"] == "/hello"


@BOTH_DATABASES
async def test_the_pending_login_completes_once(
    app: Quart, auth: AuthActions, client: TestClientProtocol
) -> None:
    phone = await enrolled(auth)
    await auth.login()
    copied = cookie_value(client)
    assert (await second_step(client, phone.code())).headers["Location"] == "/hello"
    # The cookie from before the code, copied to another browser, completes nothing.
    thief = replay(app, copied)
    assert (await thief.get(SECOND_STEP)).headers["Location"] == "/login"
    await assert_logged_out(thief)


async def test_the_second_step_without_a_password_sends_to_login(
    client: TestClientProtocol,
) -> None:
    response = await client.get(SECOND_STEP)
    assert response.status_code == 302
    assert response.headers["Location"] == "/login"


@pytest.mark.parametrize(
    "code",
    ["", "12345", "1234567", "x" * 65, "12 34\x0056"],
    ids=["empty", "short", "long", "too-long", "control-character"],
)
async def test_bad_codes_get_a_400(
    auth: AuthActions, client: TestClientProtocol, code: str
) -> None:
    await enrolled(auth)
    await auth.login()
    response = await second_step(client, code)
    assert response.status_code == 400
    assert 'aria-invalid="true"' in await body(response)
    await assert_logged_out(client)


async def test_a_json_body_gets_a_415(auth: AuthActions, client: TestClientProtocol) -> None:
    await enrolled(auth)
    await auth.login()
    token = await csrf_token(client, SECOND_STEP)
    headers = {"X-CSRFToken": token}
    response = await client.post(SECOND_STEP, json={"code": "123456"}, headers=headers)
    assert response.status_code == 415


# The throttle


async def test_wrong_codes_count_with_the_password_and_lock_out(
    auth: AuthActions, client: TestClientProtocol
) -> None:
    phone = await enrolled(auth)
    await auth.login()  # the password is the window's first attempt
    limit = DEFAULTS["LOGIN_FAILURES_PER_USER"]
    statuses = [(await second_step(client, "000000")).status_code for _ in range(limit)]
    assert statuses == [400] * (limit - 1) + [429]
    # The right code is refused too during the lockout, as a right password is.
    refused = await second_step(client, phone.code())
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) > 0
    page = await body(refused)
    assert "There were too many wrong codes for this account." in page
    assert "Back to the sign-in page" in page
    await assert_logged_out(client)


async def test_a_trusted_device_completes_its_login_while_the_username_is_locked(
    app: Quart, auth: AuthActions, client: TestClientProtocol
) -> None:
    # alice's browser logged in before (enrolling), so it is a trusted device: its
    # password and code count against the device, not the username a stranger locked.
    phone = await enrolled(auth)
    stranger = AuthActions(app.test_client())
    limit = DEFAULTS["LOGIN_FAILURES_PER_USER"]
    for _ in range(limit):
        assert (await stranger.login(password="not the password at all")).status_code == 200
    assert (await stranger.login()).status_code == 429
    response = await sign_in(auth, phone.code())
    assert response.headers["Location"] == "/hello"


async def test_a_right_code_clears_the_count(
    auth: AuthActions, client: TestClientProtocol, settings: dict[str, Any]
) -> None:
    phone = await enrolled(auth)
    await auth.login()
    for _ in range(2):
        assert (await second_step(client, "000000")).status_code == 400
    assert (await second_step(client, phone.code())).headers["Location"] == "/hello"
    assert await aquery(
        settings, "SELECT count(*) FROM throttle_counters WHERE scope = 'user'"
    ) == [(0,)]


async def test_a_right_password_does_not_reset_the_count_for_codes(
    auth: AuthActions, client: TestClientProtocol
) -> None:
    # A thief with the password cannot buy more code guesses by entering it again.
    await enrolled(auth)
    statuses = []
    for _ in range(DEFAULTS["LOGIN_FAILURES_PER_USER"]):
        response = await auth.login()
        if response.status_code != 302:
            statuses.append(response.status_code)
            break
        statuses.append((await second_step(client, "000000")).status_code)
    assert 429 in statuses
    await assert_logged_out(client)


# Recovery codes


@BOTH_DATABASES
async def test_a_recovery_code_logs_in_once_and_says_how_many_are_left(
    auth: AuthActions, client: TestClientProtocol, settings: dict[str, Any]
) -> None:
    phone = await enrolled(auth)
    spare = phone.recovery_codes[0]
    response = await sign_in(auth, spare.lower().replace("-", " "))
    assert response.headers["Location"] == "/hello"
    assert await aquery(settings, "SELECT method FROM logins") == [("password+recovery-code",)]
    page = await body(await client.get("/hello"))
    assert "You signed in with a recovery code; 9 left." in page
    await auth.logout()

    again = await sign_in(auth, spare)
    assert again.status_code == 400
    assert WRONG in await body(again)
    assert (await second_step(client, phone.recovery_codes[1])).headers["Location"] == "/hello"


async def test_the_last_recovery_codes_warn(
    auth: AuthActions, client: TestClientProtocol, settings: dict[str, Any]
) -> None:
    phone = await enrolled(auth)
    await aquery(settings, f"UPDATE recovery_codes SET used_at = {time.time()}")
    await aquery(
        settings,
        "UPDATE recovery_codes SET used_at = NULL WHERE code_hash = "
        f"'{recovery.digest(phone.recovery_codes[0].replace('-', ''))}'",
    )
    await sign_in(auth, phone.recovery_codes[0])
    page = await body(await client.get("/hello"))
    assert "You used your last recovery code." in page
    settings_page = await body(await client.get(SETTINGS))
    assert "You have no recovery codes left" in settings_page


async def test_new_recovery_codes_replace_the_old_ones(
    auth: AuthActions, client: TestClientProtocol
) -> None:
    phone = await enrolled(auth)
    await sign_in(auth, phone.code())
    form = await client.get("/account/two-factor/recovery-codes")
    assert form.status_code == 200
    page = await body(form)
    assert "<h1>Make new recovery codes?</h1>" in page
    assert "<li>Your 10 unused recovery codes: they stop working at once.</li>" in page
    assert '<button type="submit" class="button-warning">Make new recovery codes</button>' in page
    refused = await client.post("/account/two-factor/recovery-codes", form={})
    assert refused.status_code == 400  # no CSRF token: nothing replaced
    response = await post_form(client, "/account/two-factor/recovery-codes")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    fresh = recovery_codes_on(await body(response))
    assert len(fresh) == 10
    assert not set(fresh) & set(phone.recovery_codes)
    await auth.logout()
    assert (await sign_in(auth, phone.recovery_codes[0])).status_code == 400
    assert (await second_step(client, fresh[0])).headers["Location"] == "/hello"


# Re-authentication and turning it off


@BOTH_DATABASES
async def test_turning_off_needs_a_fresh_login_with_a_code(
    auth: AuthActions, client: TestClientProtocol, settings: dict[str, Any]
) -> None:
    phone = await enrolled(auth)
    await sign_in(auth, phone.code())
    await aquery(settings, f"UPDATE logins SET verified_at = {time.time() - 3600}")
    response = await client.get("/account/two-factor/disable")
    confirm = "/login/confirm?next=/account/two-factor/disable"
    assert response.headers["Location"] == confirm
    page = await body(await client.get(confirm))
    assert 'name="code"' in page

    # The password alone is not enough, nor with a wrong or used code.
    for code in ("", "000000", phone.code()):
        refused = await post_form(client, confirm, password=PASSWORD, code=code)
        assert refused.status_code == 400
    assert "Enter the code from your authenticator app" in await body(
        await post_form(client, confirm, password=PASSWORD)
    )
    confirmed = await post_form(client, confirm, password=PASSWORD, code=phone.code(1))
    assert confirmed.headers["Location"] == "/account/two-factor/disable"

    form = await client.get("/account/two-factor/disable")
    assert form.status_code == 200
    page = await body(form)
    assert "<h1>Turn off two-factor authentication?</h1>" in page
    assert "<li>Your 10 unused recovery codes: they stop working.</li>" in page
    assert (
        '<button type="submit" class="button-warning">Turn off two-factor authentication</button>'
        in page
    )
    # The POST needs the page's CSRF token.
    assert (await client.post("/account/two-factor/disable", form={})).status_code == 400
    assert await factor_row(settings) != []
    done = await post_form(client, "/account/two-factor/disable")
    # The account's front page, with a neutral note: no new key, no success banner.
    assert done.headers["Location"] == "/account"
    overview = await body(await client.get("/account"))
    assert '<div class="notice notice-info" role="status">' in overview
    assert TURNED_OFF in overview
    assert "notice-success" not in overview
    assert "totp-secret" not in overview
    assert await factor_row(settings) == []
    assert await aquery(settings, "SELECT count(*) FROM recovery_codes") == [(0,)]
    await auth.logout()
    assert (await auth.login()).headers["Location"] == "/hello"


async def test_a_recovery_code_confirms_too(
    auth: AuthActions, client: TestClientProtocol, settings: dict[str, Any]
) -> None:
    phone = await enrolled(auth)
    await sign_in(auth, phone.code())
    await aquery(settings, f"UPDATE logins SET verified_at = {time.time() - 3600}")
    confirm = "/login/confirm?next=/account/two-factor/recovery-codes"
    response = await post_form(client, confirm, password=PASSWORD, code=phone.recovery_codes[3])
    assert response.headers["Location"] == "/account/two-factor/recovery-codes"
    assert await aquery(settings, "SELECT count(*) FROM recovery_codes WHERE used_at IS NULL") == [
        (9,)
    ]


async def test_a_user_without_totp_confirms_with_the_password_alone(
    auth: AuthActions, client: TestClientProtocol, settings: dict[str, Any]
) -> None:
    await auth.login()
    await aquery(settings, f"UPDATE logins SET verified_at = {time.time() - 3600}")
    page = await body(await client.get("/login/confirm"))
    assert 'name="code"' not in page
    response = await post_form(client, "/login/confirm?next=/hello", password=PASSWORD)
    assert response.headers["Location"] == "/hello"


# The audit log


async def test_two_factor_events_are_audited(
    auth: AuthActions, client: TestClientProtocol, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="quartapp.audit")
    phone = await enrolled(auth)
    await sign_in(auth, "000000")
    await second_step(client, phone.code())
    await auth.logout()
    await sign_in(auth, phone.recovery_codes[0])
    await post_form(client, "/account/two-factor/recovery-codes")
    await post_form(client, "/account/two-factor/disable")
    events = [
        json.loads(record.getMessage())
        for record in caplog.records
        if record.name == "quartapp.audit"
    ]
    wanted = {
        "two_factor_enabled",
        "two_factor_failed",
        "two_factor_ok",
        "recovery_code_used",
        "recovery_codes_created",
        "two_factor_disabled",
    }
    seen = {event["event"]: event for event in events if event["event"] in wanted}
    assert set(seen) == wanted
    assert all(event["user"] == "alice" for event in seen.values())
    assert seen["recovery_code_used"]["remaining"] == 9
    assert seen["two_factor_disabled"]["by"] == "user"
    oks = [event["method"] for event in events if event["event"] == "two_factor_ok"]
    assert oks == ["totp", "recovery-code"]
