"""Security notifications: each change told to the confirmed address, each a setting."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from quart import Quart, Response

from quartapp import create_app, signals
from tests.conftest import AuthActions, body, csrf_token
from tests.support.twofactor import enrol, post_form

from .helpers import add_address, outbox

if TYPE_CHECKING:
    from quart.typing import TestClientProtocol

NEW_PASSWORD = "a brand new passphrase for alice"


@pytest.fixture
async def alice(app: Quart, auth: AuthActions) -> AuthActions:
    """alice exists with the confirmed address alice@example.com."""
    await add_address(app, "alice@example.com")
    return auth


async def change_password(client: TestClientProtocol) -> Response:
    token = await csrf_token(client, "/account/password")
    return await client.post(
        "/account/password",
        form={
            "current_password": "correct horse battery staple",
            "new_password": NEW_PASSWORD,
            "new_password2": NEW_PASSWORD,
            "csrf_token": token,
        },
    )


async def test_password_change_is_told(alice: AuthActions, settings: dict[str, Any]) -> None:
    await alice.login()
    assert (await change_password(alice.client)).status_code == 302
    (mail,) = await outbox(settings, "password-changed")
    assert mail.recipient == "alice@example.com"
    assert mail.message["Subject"] == "Your password was changed"
    assert "The password of your account was changed." in mail.text
    # When, from where, and what to do.
    assert "When: " in mail.text
    assert "From: " in mail.text
    assert "Browser: " in mail.text
    assert "/account/sessions" in mail.text


async def test_cli_password_change_is_told(
    alice: AuthActions, settings: dict[str, Any], runner: Any
) -> None:
    from tests.conftest import invoke

    result = await invoke(
        runner, "users", "set-password", "alice", "--password-stdin", stdin=NEW_PASSWORD + "\n"
    )
    assert result.exit_code == 0, result.output
    (mail,) = await outbox(settings, "password-changed")
    assert "command line" in mail.text


async def test_no_notice_without_confirmed_address(
    app: Quart, auth: AuthActions, settings: dict[str, Any]
) -> None:
    await add_address(app, "alice@example.com", confirmed=False)
    await auth.login()
    await change_password(auth.client)
    assert await outbox(settings) == []


async def test_sign_in_from_new_device_is_told(
    alice: AuthActions, settings: dict[str, Any]
) -> None:
    await alice.client.get("/login", headers={"User-Agent": "Mozilla/5.0 Firefox/120.0"})
    await alice.login()
    (mail,) = await outbox(settings, "new-device")
    assert mail.message["Subject"] == "A sign-in from a new device"
    assert "/account/sessions" in mail.text
    assert "/account/sessions" in mail.html
    # The same browser again, with its trusted-device cookie: nothing new.
    await alice.logout()
    await alice.login()
    assert len(await outbox(settings, "new-device")) == 1


async def test_two_factor_on_is_told(alice: AuthActions, settings: dict[str, Any]) -> None:
    await alice.login()
    await enrol(alice.client)
    (mail,) = await outbox(settings, "two-factor-on")
    assert "Two-factor authentication was turned on" in mail.text


@pytest.mark.parametrize(
    ("signal", "kind", "words"),
    [
        (signals.two_factor_enabled, "two-factor-on", "was turned on"),
        (signals.two_factor_disabled, "two-factor-off", "was turned off"),
        (signals.recovery_code_used, "recovery-code-used", "recovery codes was used"),
        (signals.recovery_codes_renewed, "recovery-codes-renewed", "New recovery codes"),
        (signals.passkey_added, "passkey-added", "\u201cMy key\u201d was added"),
        (signals.passkey_removed, "passkey-removed", "\u201cMy key\u201d was removed"),
    ],
)
async def test_each_signal_is_told(
    alice: AuthActions, app: Quart, settings: dict[str, Any], signal: Any, kind: str, words: str
) -> None:
    async with app.test_request_context("/", headers={"User-Agent": "curl/8.0"}):
        signals.send(signal, username="alice", name="My key", remaining=3, by="user")
        await app.process_response(Response(""))
    (mail,) = await outbox(settings)
    assert (mail.kind, mail.recipient) == (kind, "alice@example.com")
    assert words in mail.text
    assert "If it was not you" in mail.text


@pytest.mark.parametrize(
    ("setting", "signal"),
    [
        ("TWO_FACTOR", signals.two_factor_enabled),
        ("RECOVERY_CODES", signals.recovery_codes_renewed),
        ("PASSKEYS", signals.passkey_added),
    ],
)
async def test_signal_notice_setting_off(
    alice: AuthActions, settings: dict[str, Any], setting: str, signal: Any
) -> None:
    app = create_app({**settings, f"MAIL_NOTIFY_{setting}": False})
    async with app.test_app(), app.test_request_context("/"):
        signals.send(signal, username="alice", name="My key")
        await app.process_response(Response(""))
    assert await outbox(settings) == []


async def test_password_notice_setting_off(alice: AuthActions, settings: dict[str, Any]) -> None:
    app = create_app({**settings, "MAIL_NOTIFY_PASSWORD": False, "MAIL_NOTIFY_NEW_DEVICE": False})
    async with app.test_app():
        client = app.test_client()
        await AuthActions(client).login()
        assert (await change_password(client)).status_code == 302
    assert await outbox(settings) == []


async def test_another_apps_signal_is_not_told(
    alice: AuthActions, app: Quart, settings: dict[str, Any]
) -> None:
    other = create_app(settings)
    async with other.test_app(), other.test_request_context("/"):
        # Sent by `other`, whose own receivers write it once (not the fixture's app too).
        signals.send(signals.two_factor_enabled, username="alice")
        await other.process_response(Response(""))
    assert len(await outbox(settings)) == 1


async def test_recovery_codes_renewed_page(alice: AuthActions, settings: dict[str, Any]) -> None:
    await alice.login()
    await enrol(alice.client)
    response = await post_form(alice.client, "/account/two-factor/recovery-codes")
    assert response.status_code in (200, 302), await body(response)
    assert len(await outbox(settings, "recovery-codes-renewed")) == 1
