"""The password change is one flow (``auth.flows.change_password``), on the web and in the CLI.

The account page and ``users set-password`` must end, keep, mint and announce the same
things; the only difference is the browser that proved the old password on the page,
which keeps its login (under a new token) and gets a new trusted device.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from quart import Quart
from quart.testing import QuartCliRunner
from quart.typing import TestClientProtocol as Client

from quartapp import signals
from tests.conftest import BOTH_DATABASES, PASSWORD, AuthActions, aquery, csrf_token, invoke

NEW_PASSWORD = "a completely different passphrase 42"


@pytest.fixture
def announced() -> Iterator[list[dict[str, Any]]]:
    """Every ``password_changed`` sent while the test runs, with its sender's kind."""
    seen: list[dict[str, Any]] = []

    def receive(sender: object, **fields: Any) -> None:
        seen.append({"from_app": isinstance(sender, Quart), **fields})

    signals.password_changed.connect(receive)
    try:
        yield seen
    finally:
        signals.password_changed.disconnect(receive)


async def on_the_page(app: Quart, runner: QuartCliRunner, changer: Client) -> None:
    form = {
        "current_password": PASSWORD,
        "new_password": NEW_PASSWORD,
        "new_password2": NEW_PASSWORD,
        "csrf_token": await csrf_token(changer, "/account/password"),
    }
    response = await changer.post("/account/password", form=form)
    assert response.status_code == 302
    assert response.headers["Location"] == "/account/sessions"


async def with_the_cli(app: Quart, runner: QuartCliRunner, changer: Client) -> None:
    result = await invoke(
        runner, "users", "set-password", "alice", "--password-stdin", stdin=f"{NEW_PASSWORD}\n"
    )
    assert result.exit_code == 0, result.output
    assert "ended 3 login(s)" in result.output


async def plant(settings: dict[str, Any]) -> None:
    """What the old password may have left: a sign-in waiting for its code, and an
    unconfirmed TOTP key made by one of alice's logins."""
    (user_id,) = (await aquery(settings, "SELECT id FROM users WHERE username = 'alice'"))[0]
    (login_id,) = (await aquery(settings, "SELECT id FROM logins LIMIT 1"))[0]
    now = time.time()
    await aquery(
        settings,
        "INSERT INTO pending_logins (id, user_id, remember, expires_at) "
        f"VALUES ('{'p' * 64}', {user_id}, false, {now + 300})",
    )
    await aquery(
        settings,
        "INSERT INTO totp_factors (user_id, secret, created_at, login_id, misses) "
        f"VALUES ({user_id}, 'JBSWY3DPEHPK3PXP', {now}, '{login_id}', 0)",
    )


async def count(settings: dict[str, Any], table: str) -> int:
    return int((await aquery(settings, f"SELECT count(*) FROM {table}"))[0][0])


@BOTH_DATABASES
@pytest.mark.parametrize("change", [on_the_page, with_the_cli], ids=["web", "cli"])
async def test_web_and_cli_password_changes_end_keep_mint_and_announce_the_same(
    app: Quart,
    auth: AuthActions,
    runner: QuartCliRunner,
    settings: dict[str, Any],
    announced: list[dict[str, Any]],
    change: Any,
) -> None:
    browsers = [AuthActions(app.test_client()) for _ in range(3)]
    for browser in browsers:
        assert (await browser.login()).status_code == 302
    assert await count(settings, "devices") == 3
    await plant(settings)
    changer = browsers[0].client
    on_web = change is on_the_page

    await change(app, runner, changer)

    # Ended: every other login, half-done sign-ins, unconfirmed keys, trusted devices.
    assert await count(settings, "logins") == (1 if on_web else 0)
    assert await count(settings, "pending_logins") == 0
    assert await count(settings, "totp_factors") == 0
    # Kept and minted: only the browser that proved the old password on the page.
    assert await count(settings, "devices") == (1 if on_web else 0)
    assert ((await changer.get("/hello")).status_code == 200) is on_web
    for other in browsers[1:]:
        assert (await other.client.get("/hello")).status_code == 302
    # Announced once, from the app, with how many logins ended.
    assert announced == [
        {"from_app": True, "username": "alice", "sessions_ended": 2 if on_web else 3}
    ]
    # And the password is the new one.
    fresh = AuthActions(app.test_client())
    assert (await fresh.login("alice", PASSWORD)).status_code == 200
    assert (await fresh.login("alice", NEW_PASSWORD)).status_code == 302
