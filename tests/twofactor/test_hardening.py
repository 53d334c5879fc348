"""The second factor's hardening: pending keys, strong re-authentication, code guessing, logout.

- An unconfirmed TOTP key belongs to the login that made it and lives 15 minutes;
  ending logins deletes it.
- With a second factor, changing the password needs a fresh login proven with it.
- Wrong codes in a row count per user, on every path; after ten only a recovery code
  or a passkey signs in.
- Logging out, or starting again, during the code step ends the pending login.

One test of each statement that rows in the database decide runs on SQLite and
PostgreSQL (marked BOTH_DATABASES, the rule: tests/conftest.py): a key kept per login
and its age, the hooks that delete keys and pending logins, the run of wrong codes and
the prune of their record. Tests that send other requests down the same statements
run on SQLite alone.
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING, Any

import pyotp
from quart import Quart
from quart.testing import QuartCliRunner

from tests.conftest import (
    BOTH_DATABASES,
    PASSWORD,
    AuthActions,
    aquery,
    astored_hash,
    body,
    both_databases_for,
    cookie_value,
    csrf_token,
    invoke,
    replay,
    settings_at_head,
)
from tests.passkeys.test_passkeys import register
from tests.passkeys.test_passkeys import sign_in as passkey_sign_in
from tests.support.passkey_authenticator import SoftAuthenticator
from tests.support.settings import DEFAULTS
from tests.support.twofactor import (
    SECOND_STEP,
    SETTINGS,
    Phone,
    enrol,
    enrolled,
    now,
    post_form,
    second_step,
    secret_on,
    sign_in,
    steady,
)

if TYPE_CHECKING:
    from quart.typing import TestClientProtocol

NEW_PASSWORD = "a brand new password, long enough"
WRONG_RECOVERY = "2222-2222-2222-2222-2222-2222"
FIREFOX = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:120.0) Gecko/20100101 Firefox/120.0"


async def pending_keys(settings: dict[str, Any]) -> int:
    return int(
        (await aquery(settings, "SELECT count(*) FROM totp_factors WHERE confirmed_at IS NULL"))[
            0
        ][0]
    )


def code_of(secret: str) -> str:
    return pyotp.TOTP(secret).at(now())


async def change_password(client: TestClientProtocol, current: str = PASSWORD) -> Any:
    # The token from a page every login may see: the password page may redirect.
    token = await csrf_token(client, "/account/sessions")
    form = {
        "current_password": current,
        "new_password": NEW_PASSWORD,
        "new_password2": NEW_PASSWORD,
        "csrf_token": token,
    }
    return await client.post("/account/password", form=form)


async def stale(settings: dict[str, Any]) -> None:
    """Every login's last proof is older than the re-authentication window."""
    await aquery(settings, f"UPDATE logins SET verified_at = {time.time() - 3600}")


async def time_passes(settings: dict[str, Any]) -> None:
    """The throttle's windows and the second factor's wait are over (misses stay)."""
    await aquery(settings, "DELETE FROM throttle_counters")
    await aquery(settings, "UPDATE totp_factors SET wait_until = NULL")


# F1: a pending key belongs to its login and lives 15 minutes


@BOTH_DATABASES
async def test_another_login_is_shown_a_new_key_and_the_old_one_confirms_nothing(
    app: Quart, auth: AuthActions, client: TestClientProtocol, settings: dict[str, Any]
) -> None:
    await auth.login()
    planted = secret_on(await body(await client.get(SETTINGS)))
    owner = AuthActions(app.test_client())
    await owner.login()
    shown = secret_on(await body(await owner.client.get(SETTINGS)))
    assert shown != planted
    assert await pending_keys(settings) == 1
    # The first login's copy is worth nothing now, nor is the second's key to it.
    steady()
    refused = await post_form(client, SETTINGS, code=code_of(shown))
    assert refused.status_code == 400
    assert await aquery(
        settings, "SELECT count(*) FROM totp_factors WHERE confirmed_at IS NOT NULL"
    ) == [(0,)]


@BOTH_DATABASES
async def test_a_pending_key_older_than_fifteen_minutes_is_replaced_and_confirms_nothing(
    auth: AuthActions, client: TestClientProtocol, settings: dict[str, Any]
) -> None:
    await auth.login()
    old = secret_on(await body(await client.get(SETTINGS)))
    await aquery(settings, f"UPDATE totp_factors SET created_at = {time.time() - 15 * 60 - 5}")
    steady()
    refused = await post_form(client, SETTINGS, code=code_of(old))
    assert refused.status_code == 400
    new = secret_on(await body(refused))
    assert new != old
    assert await aquery(settings, "SELECT secret FROM totp_factors") == [(new,)]
    assert (await client.get(SETTINGS)).status_code == 200
    # Within its 15 minutes the same login sees the same key.
    assert secret_on(await body(await client.get(SETTINGS))) == new


async def test_a_planted_key_does_not_survive_a_password_change(
    app: Quart, auth: AuthActions, client: TestClientProtocol, settings: dict[str, Any]
) -> None:
    # Someone with a fresh session copies the key and leaves it unconfirmed.
    thief = AuthActions(app.test_client())
    await thief.login()
    planted = secret_on(await body(await thief.client.get(SETTINGS)))
    # The owner changes the password (ending the thief's login) and turns TOTP on.
    await auth.login()
    assert (await change_password(client)).headers["Location"] == "/account/sessions"
    assert await pending_keys(settings) == 0
    phone = await enrol(client)
    assert phone.secret != planted
    await auth.logout()
    # Password and a code from the planted key sign no one in.
    steady()
    await thief.login(password=NEW_PASSWORD)
    refused = await second_step(thief.client, code_of(planted))
    assert refused.status_code == 400
    assert (await thief.client.get("/hello")).status_code == 302


# Both commands end logins through the same hook; set-password's flow also runs on
# PostgreSQL in tests/auth/test_flows.py, which counts the keys it deletes.
@both_databases_for(
    "command",
    [
        ["users", "set-password", "alice", "--password-stdin"],
        ["users", "revoke-sessions", "alice"],
    ],
    ["command0", "command1"],
    postgres=["command1"],
)
async def test_the_cli_ending_logins_deletes_pending_keys(
    auth: AuthActions,
    client: TestClientProtocol,
    runner: QuartCliRunner,
    settings: dict[str, Any],
    command: list[str],
) -> None:
    await auth.login()
    await client.get(SETTINGS)
    assert await pending_keys(settings) == 1
    result = await invoke(runner, *command, stdin=f"{NEW_PASSWORD}\n")
    assert result.exit_code == 0, result.output
    assert await pending_keys(settings) == 0


async def key_made_by_another_login(app: Quart, auth: AuthActions) -> None:
    """Another browser of alice's opens the enrolment page (a pending key for its login);
    then ``auth``'s browser logs in."""
    other = AuthActions(app.test_client())
    await other.login()
    await other.client.get(SETTINGS)
    await auth.login()


async def test_logging_out_everywhere_else_deletes_pending_keys(
    app: Quart, auth: AuthActions, client: TestClientProtocol, settings: dict[str, Any]
) -> None:
    await key_made_by_another_login(app, auth)
    token = await csrf_token(client, "/account/sessions/end-others")
    done = await client.post("/account/sessions/end-others", form={"csrf_token": token})
    assert done.headers["Location"] == "/account/sessions"
    assert await pending_keys(settings) == 0


@BOTH_DATABASES
async def test_ending_one_login_deletes_its_pending_key(
    app: Quart, auth: AuthActions, client: TestClientProtocol, settings: dict[str, Any]
) -> None:
    await key_made_by_another_login(app, auth)
    page = await body(await client.get("/account/sessions"))
    public = re.search(r'href="/account/sessions/end\?login=([0-9a-f]+)"', page)
    assert public, page
    token = await csrf_token(client, f"/account/sessions/end?login={public.group(1)}")
    ended = await client.post(
        "/account/sessions/end", form={"login": public.group(1), "csrf_token": token}
    )
    assert ended.headers["Location"] == "/account/sessions"
    assert await pending_keys(settings) == 0


# F4: with a second factor, the password changes only after a strong, fresh proof


async def test_a_stale_login_with_totp_must_confirm_with_a_code_to_change_the_password(
    auth: AuthActions, client: TestClientProtocol, settings: dict[str, Any]
) -> None:
    phone = await enrolled(auth)
    await sign_in(auth, phone.code())
    await stale(settings)
    before = await astored_hash(settings)
    confirm = "/login/confirm?next=/account/password"
    assert (await client.get("/account/password")).headers["Location"] == confirm
    # A POST with the right current password changes nothing.
    refused = await change_password(client)
    assert refused.status_code == 302
    assert refused.headers["Location"] == confirm
    assert await astored_hash(settings) == before

    confirmed = await post_form(client, confirm, password=PASSWORD, code=phone.code(1))
    assert confirmed.headers["Location"] == "/account/password"
    assert (await change_password(client)).headers["Location"] == "/account/sessions"
    assert await astored_hash(settings) != before


async def test_a_fresh_password_only_login_cannot_change_the_password_once_totp_is_on(
    auth: AuthActions, client: TestClientProtocol, settings: dict[str, Any]
) -> None:
    # The login was made with the password alone, before TOTP was turned on in it.
    await auth.login()
    await enrol(client)
    before = await astored_hash(settings)
    response = await change_password(client)
    assert response.headers["Location"] == "/login/confirm?next=/account/password"
    assert await astored_hash(settings) == before


async def test_a_passkey_user_changes_the_password_after_a_passkey_sign_in(
    auth: AuthActions, client: TestClientProtocol, settings: dict[str, Any]
) -> None:
    await auth.login()
    key = SoftAuthenticator()
    status, answer = await register(client, key)
    assert status == 200, answer
    # The password login is fresh, but the password alone is not a strong proof.
    assert (await client.get("/account/password")).status_code == 302
    await auth.logout()
    status, answer = await passkey_sign_in(client, key)
    assert status == 200, answer
    assert (await client.get("/account/password")).status_code == 200
    assert (await change_password(client)).headers["Location"] == "/account/sessions"


async def test_without_a_second_factor_a_stale_login_changes_the_password_as_before(
    auth: AuthActions, client: TestClientProtocol, settings: dict[str, Any]
) -> None:
    await auth.login()
    await stale(settings)
    assert (await client.get("/account/password")).status_code == 200
    assert (await change_password(client)).headers["Location"] == "/account/sessions"


# F5: wrong codes in a row count per user, on every path


@BOTH_DATABASES
async def test_ten_wrong_codes_in_a_row_leave_only_a_recovery_code(
    auth: AuthActions, client: TestClientProtocol, settings: dict[str, Any]
) -> None:
    # alice's own browser: a trusted device, whose throttle never grows.
    phone = await enrolled(auth)
    await auth.login()
    for _ in range(10):
        await time_passes(settings)
        assert (await second_step(client, "000000")).status_code == 400
    await time_passes(settings)
    steady()
    refused = await second_step(client, phone.code())
    assert refused.status_code == 429
    page = await body(refused)
    assert "recovery code" in page
    assert "passkey" in page
    assert (await client.get("/hello")).status_code == 302
    # A recovery code still signs in, and ends the run.
    done = await second_step(client, phone.recovery_codes[0])
    assert done.headers["Location"] == "/hello"
    assert await aquery(settings, "SELECT misses FROM totp_factors") == [(0,)]


async def test_a_passkey_sign_in_ends_the_run_of_wrong_codes(
    auth: AuthActions, client: TestClientProtocol, settings: dict[str, Any]
) -> None:
    await auth.login()
    key = SoftAuthenticator()
    assert (await register(client, key))[0] == 200
    phone = await enrol(client)
    await auth.logout()
    await auth.login()
    for _ in range(10):
        await time_passes(settings)
        assert (await second_step(client, "000000")).status_code == 400
    await time_passes(settings)
    assert (await second_step(client, phone.code())).status_code == 429
    status, answer = await passkey_sign_in(client, key)
    assert status == 200, answer
    assert await aquery(settings, "SELECT misses FROM totp_factors") == [(0,)]


async def test_wrong_codes_wait_longer_and_longer(
    auth: AuthActions, client: TestClientProtocol, settings: dict[str, Any]
) -> None:
    phone = await enrolled(auth)
    await auth.login()
    waits = []
    for _ in range(9):
        await aquery(settings, "DELETE FROM throttle_counters")
        await aquery(settings, "UPDATE totp_factors SET wait_until = NULL")
        assert (await second_step(client, "000000")).status_code == 400
        (wait_until,) = (await aquery(settings, "SELECT wait_until FROM totp_factors"))[0]
        waits.append(None if wait_until is None else round((wait_until - time.time()) / 60))
    window = DEFAULTS["LOGIN_FAILURE_WINDOW"] // 60
    assert waits == [None] * 4 + [window, 2 * window, 4 * window, 8 * window, 16 * window]
    # During a wait even the right code is refused, with when to come back.
    await aquery(settings, "DELETE FROM throttle_counters")
    steady()
    refused = await second_step(client, phone.code())
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) > 0
    assert "recovery code" in await body(refused)


async def test_wrong_codes_at_confirm_and_at_sign_in_count_together(
    auth: AuthActions, client: TestClientProtocol, settings: dict[str, Any]
) -> None:
    phone = await enrolled(auth)
    await sign_in(auth, phone.code())
    await stale(settings)
    confirm = "/login/confirm?next=/account/two-factor/disable"
    for _ in range(3):
        await time_passes(settings)
        assert (
            await post_form(client, confirm, password=PASSWORD, code="000000")
        ).status_code == 400
    await auth.logout()
    await time_passes(settings)
    await auth.login()
    assert (await second_step(client, WRONG_RECOVERY)).status_code == 400
    assert await aquery(settings, "SELECT misses FROM totp_factors") == [(4,)]
    steady()
    assert (await second_step(client, phone.code(1))).headers["Location"] == "/hello"
    assert await aquery(settings, "SELECT misses FROM totp_factors") == [(0,)]


@BOTH_DATABASES
async def test_the_owner_sees_the_last_twenty_failed_codes(
    auth: AuthActions, client: TestClientProtocol, settings: dict[str, Any]
) -> None:
    phone = await enrolled(auth)
    await auth.login()
    for _ in range(22):
        await time_passes(settings)
        wrong = await client.post(
            SECOND_STEP,
            form={"code": WRONG_RECOVERY, "csrf_token": await csrf_token(client, SECOND_STEP)},
            headers={"User-Agent": FIREFOX},
        )
        assert wrong.status_code == 400
    assert await aquery(settings, "SELECT count(*) FROM second_factor_failures") == [(20,)]
    await time_passes(settings)
    await second_step(client, phone.recovery_codes[0])
    page = await body(await client.get(SETTINGS))
    assert "Failed codes" in page
    assert page.count("Firefox on Windows") == 20


async def test_failed_codes_are_counted_in_the_metrics(tmp_path: Any, database: str) -> None:
    from quartapp import create_app
    from tests.app.test_metrics import TOKEN, scrape, value
    from tests.conftest import add_user

    settings = settings_at_head(tmp_path, database, METRICS_TOKEN=TOKEN)
    app = create_app(settings)
    async with app.test_app():
        await add_user(app)
        client = app.test_client()
        auth = AuthActions(client)
        await enrolled(auth)
        before = value(await scrape(client), "quartapp_second_factor_failures_total")
        await auth.login()
        assert (await second_step(client, "000000")).status_code == 400
        after = value(await scrape(client), "quartapp_second_factor_failures_total")
        assert after == before + 1


# F6 / F7: leaving the code step ends the pending login


async def pending_then_copy(auth: AuthActions, client: TestClientProtocol) -> tuple[Phone, str]:
    phone = await enrolled(auth)
    assert (await auth.login()).headers["Location"] == SECOND_STEP
    return phone, cookie_value(client)


async def assert_replay_refused(app: Quart, copied: str, phone: Phone) -> None:
    copy = replay(app, copied)
    steady()
    # The token from the login page: the code step's page itself sends a dead login back.
    token = await csrf_token(copy, "/login")
    response = await copy.post(SECOND_STEP, form={"code": phone.code(), "csrf_token": token})
    assert response.headers.get("Location") != "/hello"
    assert (await copy.get("/hello")).status_code == 302


@BOTH_DATABASES
async def test_logging_out_during_the_code_step_ends_the_pending_login(
    app: Quart, auth: AuthActions, client: TestClientProtocol, settings: dict[str, Any]
) -> None:
    phone, copied = await pending_then_copy(auth, client)
    token = await csrf_token(client, SECOND_STEP)
    await client.post("/logout", form={"csrf_token": token})
    assert await aquery(settings, "SELECT count(*) FROM pending_logins") == [(0,)]
    await assert_replay_refused(app, copied, phone)


async def test_starting_again_ends_the_pending_login(
    app: Quart, auth: AuthActions, client: TestClientProtocol, settings: dict[str, Any]
) -> None:
    phone, copied = await pending_then_copy(auth, client)
    page = await body(await client.get(SECOND_STEP))
    action = re.search(
        r'<form[^>]*action="([^"]+)"[^>]*>\s*<input[^>]*csrf_token[^>]*>\s*'
        r"<button[^>]*>Start again",
        page,
    )
    assert action, page
    token = await csrf_token(client, SECOND_STEP)
    restarted = await client.post(action.group(1), form={"csrf_token": token})
    assert restarted.headers["Location"] == "/login"
    assert await aquery(settings, "SELECT count(*) FROM pending_logins") == [(0,)]
    await assert_replay_refused(app, copied, phone)


async def test_a_new_password_step_ends_the_earlier_pending_login(
    app: Quart, auth: AuthActions, client: TestClientProtocol, settings: dict[str, Any]
) -> None:
    phone, copied = await pending_then_copy(auth, client)
    # The same browser goes back to the login form and enters the password again.
    assert (await auth.login()).headers["Location"] == SECOND_STEP
    assert await aquery(settings, "SELECT count(*) FROM pending_logins") == [(1,)]
    await assert_replay_refused(app, copied, phone)
