"""Password reset by mail: the request, the link, the new password, and their limits."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import pytest
from quart import Quart

from quartapp.db import db
from quartapp.mail import tokens
from tests.conftest import (
    BOTH_DATABASES,
    PASSWORD,
    AuthActions,
    aquery,
    body,
    csrf_token,
    invoke,
)
from tests.support.twofactor import SECOND_STEP, enrolled

from .conftest import BASE_URL
from .helpers import SENT_PAGE, add_address, link_in, outbox, tokens_of

if TYPE_CHECKING:
    # Only for annotations: a Test* class at module level would be collected by pytest.
    from quart.typing import TestClientProtocol

NEW_PASSWORD = "a brand new passphrase for alice"
REQUEST = "/reset_password_request"


async def ask(client: TestClientProtocol, address: str) -> Any:
    """Submit the reset request form for ``address``."""
    token = await csrf_token(client, REQUEST)
    return await client.post(REQUEST, form={"email": address, "csrf_token": token})


async def follow(client: TestClientProtocol, token: str) -> Any:
    """Open a reset link as a browser does: the link, then where it sends the browser."""
    response = await client.get(f"/reset_password/{token}")
    assert response.status_code == 302
    assert response.headers["Location"] == "/reset_password"
    return await client.get("/reset_password")


async def set_password(client: TestClientProtocol, password: str = NEW_PASSWORD) -> Any:
    token = await csrf_token(client, "/reset_password")
    return await client.post(
        "/reset_password",
        form={"password": password, "password2": password, "csrf_token": token},
    )


@pytest.fixture
async def alice(app: Quart, auth: AuthActions) -> AuthActions:
    """alice exists with the confirmed address alice@example.com."""
    await add_address(app, "alice@example.com")
    return auth


async def test_login_page_offers_reset(client: TestClientProtocol) -> None:
    page = await body(await client.get("/login"))
    assert 'href="/reset_password_request">Forgot your password?</a>' in page


@pytest.mark.parametrize("path", [REQUEST, "/reset_password", "/account/email"])
async def test_no_pages_with_mail_off(settings: dict[str, Any], path: str, tmp_path: Any) -> None:
    from quartapp import create_app

    app = create_app({**settings, "MAIL_URL": "none"})
    async with app.test_app():
        client = app.test_client()
        assert "Forgot your password?" not in await body(await client.get("/login"))
        assert (await client.get(path)).status_code == 404


async def test_reset_happy_path(alice: AuthActions, settings: dict[str, Any]) -> None:
    client = alice.client
    response = await ask(client, "Alice@Example.com")
    assert response.status_code == 200
    assert SENT_PAGE in await body(response)
    (mail,) = await outbox(settings)
    assert (mail.kind, mail.recipient) == ("password-reset", "alice@example.com")
    assert mail.message["To"] == "alice@example.com"
    assert mail.message["Subject"] == "Reset your password"
    token = link_in(mail)
    assert f"{BASE_URL}/reset_password/{token}" in mail.text

    page = await follow(client, token)
    assert page.status_code == 200
    assert 'name="password"' in await body(page)
    assert 'name="password2"' in await body(page)
    # Neither the link's GET nor the form's spends it.
    assert [used for _, _, used in await tokens_of(settings)] == [None]

    done = await set_password(client)
    assert done.status_code == 302
    assert done.headers["Location"] == "/login"
    assert "Your password was reset" in await body(await client.get("/login"))
    # No automatic login: the next page asks to sign in.
    assert (await client.get("/hello")).status_code == 302
    assert (await alice.login(password=PASSWORD)).status_code == 200  # the old one fails
    assert (await alice.login(password=NEW_PASSWORD)).status_code == 302
    (notice,) = await outbox(settings, "password-changed")
    assert notice.recipient == "alice@example.com"
    assert "reset with a link" in notice.text


async def test_same_page_for_unknown_address(alice: AuthActions, settings: dict[str, Any]) -> None:
    known = await ask(alice.client, "alice@example.com")
    unknown = await ask(alice.client, "nobody@example.com")
    assert known.status_code == unknown.status_code == 200
    assert await body(known) == await body(unknown)
    assert [m.recipient for m in await outbox(settings)] == ["alice@example.com"]


async def test_unconfirmed_address_gets_nothing(
    app: Quart, auth: AuthActions, settings: dict[str, Any]
) -> None:
    await add_address(app, "alice@example.com", confirmed=False)
    response = await ask(auth.client, "alice@example.com")
    assert SENT_PAGE in await body(response)
    assert await outbox(settings) == []
    assert await tokens_of(settings) == []


async def test_unknown_address_notice_when_on(
    settings: dict[str, Any], alice: AuthActions
) -> None:
    # The setting is read when the app is built: this app has it off.
    await ask(alice.client, "nobody@example.com")
    assert await outbox(settings) == []


async def test_unknown_address_notice_setting(settings: dict[str, Any]) -> None:
    from quartapp import create_app

    app = create_app({**settings, "MAIL_UNKNOWN_ADDRESS_NOTICE": True})
    async with app.test_app():
        response = await ask(app.test_client(), "nobody@example.com")
        assert SENT_PAGE in await body(response)
    (mail,) = await outbox(settings)
    assert (mail.kind, mail.recipient) == ("reset-unknown", "nobody@example.com")
    assert "no account uses this address" in mail.text
    assert "/reset_password/" not in mail.text


@pytest.mark.parametrize("address", ["not an address", "a@", "@b.example", "x" * 300])
async def test_bad_address_is_a_form_error(client: TestClientProtocol, address: str) -> None:
    response = await ask(client, address)
    assert response.status_code == 400
    assert "Error: Reset your password" in await body(response)


async def test_limit_per_address(alice: AuthActions, settings: dict[str, Any]) -> None:
    answers = [await body(await ask(alice.client, "alice@example.com")) for _ in range(5)]
    assert all(SENT_PAGE in page for page in answers)
    assert len(await outbox(settings)) == 3
    # Unknown addresses are counted the same way.
    for _ in range(4):
        assert SENT_PAGE in await body(await ask(alice.client, "nobody@example.com"))
    assert await aquery(
        settings, "SELECT attempts FROM throttle_counters WHERE key = 'nobody@example.com'"
    ) == [(4,)]


async def test_limit_per_network(settings: dict[str, Any], alice: AuthActions) -> None:
    from quartapp import create_app

    app = create_app({**settings, "RESET_REQUESTS_PER_NETWORK": 2})
    async with app.test_app():
        client = app.test_client()
        for address in ["a@example.com", "b@example.com", "alice@example.com"]:
            assert SENT_PAGE in await body(await ask(client, address))
    assert await outbox(settings) == []


async def test_link_works_once(alice: AuthActions, settings: dict[str, Any]) -> None:
    await ask(alice.client, "alice@example.com")
    token = link_in((await outbox(settings))[0])
    await follow(alice.client, token)
    assert (await set_password(alice.client)).status_code == 302
    again = await follow(alice.client, token)
    assert again.status_code == 410
    page = await body(again)
    assert "This link does not work" in page
    assert 'href="/reset_password_request"' in page


async def test_expired_link_is_refused(alice: AuthActions, settings: dict[str, Any]) -> None:
    await ask(alice.client, "alice@example.com")
    token = link_in((await outbox(settings))[0])
    await aquery(settings, "UPDATE mail_tokens SET expires_at = expires_at - 3601")
    assert (await follow(alice.client, token)).status_code == 410


async def test_newer_request_ends_older(alice: AuthActions, settings: dict[str, Any]) -> None:
    await ask(alice.client, "alice@example.com")
    await ask(alice.client, "alice@example.com")
    first, second = (link_in(mail) for mail in await outbox(settings))
    assert (await follow(alice.client, first)).status_code == 410
    assert (await follow(alice.client, second)).status_code == 200


async def test_password_change_ends_links(
    alice: AuthActions, settings: dict[str, Any], runner: Any
) -> None:
    await ask(alice.client, "alice@example.com")
    token = link_in((await outbox(settings))[0])
    result = await invoke(
        runner, "users", "set-password", "alice", "--password-stdin", stdin=NEW_PASSWORD + "\n"
    )
    assert result.exit_code == 0, result.output
    assert (await follow(alice.client, token)).status_code == 410


async def test_form_without_link_is_refused(client: TestClientProtocol) -> None:
    response = await client.get("/reset_password")
    assert response.status_code == 400
    assert "Request a new reset link" in await body(response)


@pytest.mark.parametrize("token", ["short", "x" * 101, "bad.chars!in-token-here-xx"])
async def test_malformed_link_is_refused(client: TestClientProtocol, token: str) -> None:
    response = await client.get(f"/reset_password/{token}")
    assert response.status_code == 410


async def test_weak_password_keeps_the_link(alice: AuthActions, settings: dict[str, Any]) -> None:
    await ask(alice.client, "alice@example.com")
    await follow(alice.client, link_in((await outbox(settings, "password-reset"))[0]))
    response = await set_password(alice.client, "short")
    assert response.status_code == 400
    assert "shorter than" in await body(response)
    assert [used for _, _, used in await tokens_of(settings)] == [None]
    assert (await set_password(alice.client)).status_code == 302


async def test_reset_ends_logins(alice: AuthActions, app: Quart, settings: dict[str, Any]) -> None:
    other = app.test_client()
    await AuthActions(other).login()
    assert (await other.get("/hello")).status_code == 200
    await ask(alice.client, "alice@example.com")
    await follow(alice.client, link_in((await outbox(settings, "password-reset"))[0]))
    await set_password(alice.client)
    assert (await other.get("/hello")).status_code == 302
    assert await aquery(settings, "SELECT count(*) FROM devices") == [(0,)]


async def test_second_factor_still_required(alice: AuthActions, settings: dict[str, Any]) -> None:
    await enrolled(alice)
    await ask(alice.client, "alice@example.com")
    await follow(alice.client, link_in((await outbox(settings, "password-reset"))[0]))
    assert (await set_password(alice.client)).status_code == 302
    response = await alice.login(password=NEW_PASSWORD)
    assert response.status_code == 302
    assert response.headers["Location"] == SECOND_STEP


async def test_access_log_redacts_the_token(
    settings: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    from quartapp import create_app

    app = create_app({**settings, "ACCESS_LOG": True})
    token = "A" * 43
    async with app.test_app():
        client = app.test_client()
        capsys.readouterr()
        await client.get(f"/reset_password/{token}")
        await client.get(f"/account/email/confirm/{token}")
    out = capsys.readouterr().out
    assert token not in out
    assert '"/reset_password/[redacted]"' in out
    assert '"/account/email/confirm/[redacted]"' in out


@BOTH_DATABASES
async def test_one_link_spent_once_under_a_race(
    alice: AuthActions, app: Quart, settings: dict[str, Any]
) -> None:
    await ask(alice.client, "alice@example.com")
    token = link_in((await outbox(settings))[0])

    async def spend() -> bool:
        async with db.session() as dbs:
            spent = await tokens.spend(dbs, token, tokens.RESET)
            await dbs.commit()
            return spent is not None

    async with app.app_context():
        results = await asyncio.gather(*(spend() for _ in range(4)))
    assert sorted(results) == [False, False, False, True]
