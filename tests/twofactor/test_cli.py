"""``users reset-2fa NAME``: an admin removes a user's TOTP and ends their logins."""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

import pytest
from quart import Quart
from quart.testing import QuartCliRunner

from tests.conftest import (
    BOTH_DATABASES,
    SQLITE_ONLY,
    AuthActions,
    add_user,
    aquery,
    cookie_value,
    csrf_token,
    invoke,
    replay,
)
from tests.support.twofactor import enrolled, sign_in

# The command deletes rows: its test runs on PostgreSQL too (the rule: tests/conftest.py).
# The other tests send the same statements for another user, or none; the logins' hook
# that ends a sign-in waiting for its code runs on PostgreSQL in tests/auth/test_flows.py.

if TYPE_CHECKING:
    from quart.typing import TestClientProtocol


@BOTH_DATABASES
async def test_reset_removes_totp_and_ends_every_login(
    app: Quart,
    auth: AuthActions,
    client: TestClientProtocol,
    runner: QuartCliRunner,
    settings: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="quartapp.audit")
    phone = await enrolled(auth)
    await sign_in(auth, phone.code())
    other = AuthActions(app.test_client())
    await sign_in(other, phone.recovery_codes[0])
    cookie = cookie_value(client)

    result = await invoke(runner, "users", "reset-2fa", "ALICE")

    assert (result.exit_code, result.stdout) == (
        0,
        "removed two-factor authentication of 'alice'; ended 2 login(s)\n",
    )
    assert await aquery(settings, "SELECT count(*) FROM totp_factors") == [(0,)]
    assert await aquery(settings, "SELECT count(*) FROM recovery_codes") == [(0,)]
    assert await aquery(settings, "SELECT count(*) FROM logins") == [(0,)]
    response = await replay(app, cookie).get("/hello")
    assert response.headers["Location"].startswith("/login")
    # The password alone signs in again.
    assert (await auth.login()).headers["Location"] == "/hello"
    events = [json.loads(r.getMessage()) for r in caplog.records if r.name == "quartapp.audit"]
    reset = [event for event in events if event["event"] == "two_factor_disabled"]
    assert reset == [
        {"event": "two_factor_disabled", "user": "alice", "by": "admin", "addr": "cli"}
    ]


async def test_reset_of_a_user_without_totp_still_ends_the_logins(
    auth: AuthActions, runner: QuartCliRunner, settings: dict[str, Any]
) -> None:
    await auth.login()
    result = await invoke(runner, "users", "reset-2fa", "alice")
    assert result.stdout == "no two-factor authentication of 'alice'; ended 1 login(s)\n"
    assert await aquery(settings, "SELECT count(*) FROM logins") == [(0,)]


async def test_reset_leaves_other_users_alone(
    app: Quart, auth: AuthActions, runner: QuartCliRunner, settings: dict[str, Any]
) -> None:
    await add_user(app, "bob")
    bob = AuthActions(app.test_client())
    bobs_phone = await enrolled(bob, "bob")
    await enrolled(auth)
    await invoke(runner, "users", "reset-2fa", "alice")
    assert await aquery(settings, "SELECT count(*) FROM totp_factors") == [(1,)]
    assert (await sign_in(bob, bobs_phone.code(), username="bob")).headers["Location"] == "/hello"


@SQLITE_ONLY  # refused before any row changes: no database decides it
@pytest.mark.parametrize("args", [["nobody"], ["NoBody"], []], ids=["unknown", "case", "none"])
def test_reset_refuses_a_bad_name_in_one_line(runner: QuartCliRunner, args: list[str]) -> None:
    result = runner.invoke(args=["users", "reset-2fa", *args])
    assert result.exit_code != 0
    lines = result.stderr.splitlines()
    assert "Traceback" not in result.output
    if args:
        assert lines == ["Error: no user named 'nobody'"]
    else:
        assert lines[-1] == "Error: Missing argument 'NAME'."


async def test_revoking_sessions_ends_a_login_waiting_for_its_code(
    auth: AuthActions,
    client: TestClientProtocol,
    runner: QuartCliRunner,
    settings: dict[str, Any],
) -> None:
    phone = await enrolled(auth)
    assert (await auth.login()).headers["Location"] == "/login/two-factor"
    await invoke(runner, "users", "revoke-sessions", "alice")
    assert await aquery(settings, "SELECT count(*) FROM pending_logins") == [(0,)]
    token = await csrf_token(client, "/login")  # the step's page itself sends us back
    response = await client.post(
        "/login/two-factor", form={"code": phone.code(), "csrf_token": token}
    )
    assert response.headers["Location"] == "/login"
    assert (await client.get("/hello")).status_code == 302
