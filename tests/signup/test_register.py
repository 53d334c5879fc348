"""Sign-up: /register, the confirmation link, the gate on unconfirmed accounts, and
what the page must not reveal."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from quart import Quart

from quartapp import create_app
from tests.conftest import BOTH_DATABASES, AuthActions, aquery, body, csrf_token
from tests.mail.helpers import add_address, link_in, outbox

from .conftest import CONFIRM_LINK, NEW_PASSWORD, register

if TYPE_CHECKING:
    from quart.typing import TestClientProtocol


async def users_named(settings: dict[str, Any], name: str) -> int:
    return len(await aquery(settings, f"SELECT id FROM users WHERE username = '{name}'"))


async def confirm_with(client: TestClientProtocol, token: str) -> Any:
    """Open the link, then press its one button."""
    page = await client.get(f"/confirm_email/{token}")
    assert page.status_code == 200
    form = await csrf_token(client, f"/confirm_email/{token}")
    return await client.post(f"/confirm_email/{token}", form={"csrf_token": form})


async def test_login_page_links_to_register(client: TestClientProtocol) -> None:
    page = await body(await client.get("/login"))
    assert 'href="/register">New user? Register</a>' in page


@pytest.mark.parametrize("overrides", [{"REGISTRATION_OPEN": False}, {"MAIL_URL": "none"}])
async def test_closed_registration_is_a_404(
    settings: dict[str, Any], overrides: dict[str, Any]
) -> None:
    app = create_app({**settings, **overrides})
    async with app.test_app():
        client = app.test_client()
        assert "New user? Register" not in await body(await client.get("/login"))
        assert (await client.get("/register")).status_code == 404


@BOTH_DATABASES
async def test_register_confirm_sign_in(
    app: Quart, client: TestClientProtocol, settings: dict[str, Any]
) -> None:
    response = await register(client)
    assert response.status_code == 302
    assert response.headers["Location"] == "/login"
    assert "Check your email" in await body(await client.get("/login"))
    [mail] = await outbox(settings, "signup-confirm")
    assert mail.recipient == "bob@example.com"
    token = link_in(mail, CONFIRM_LINK)

    # Unconfirmed: signing in leads only to the confirm-your-email page.
    auth = AuthActions(client)
    signed = await auth.login("bob", NEW_PASSWORD)
    assert signed.status_code == 302
    hello = await client.get("/hello")
    assert hello.status_code == 302
    assert hello.headers["Location"] == "/confirm_email"
    page = await body(await client.get("/confirm_email"))
    assert "Confirm your email address" in page
    assert "Send the email again" in page
    assert (await client.get("/account/password")).headers["Location"] == "/confirm_email"
    await auth.logout()

    # The link's GET changes nothing; its POST confirms and signs nobody in.
    assert await aquery(settings, "SELECT confirmed_at FROM registrations") == [(None,)]
    confirmed = await confirm_with(client, token)
    assert confirmed.status_code == 302
    assert confirmed.headers["Location"] == "/login"
    assert (await client.get("/hello")).headers["Location"].startswith("/login")
    [(at,)] = await aquery(settings, "SELECT confirmed_at FROM registrations")
    assert at is not None
    [(address_confirmed,)] = await aquery(settings, "SELECT confirmed_at FROM email_addresses")
    assert address_confirmed is not None

    # Single use.
    again = await client.post(
        f"/confirm_email/{token}", form={"csrf_token": await csrf_token(client, "/login")}
    )
    assert again.status_code == 410
    assert (await client.get(f"/confirm_email/{token}")).status_code == 410

    await auth.login("bob", NEW_PASSWORD)
    assert (await client.get("/hello")).status_code == 200


async def test_form_errors_are_400(client: TestClientProtocol, settings: dict[str, Any]) -> None:
    mismatch = await register(client, password2="something else entirely here")
    assert mismatch.status_code == 400
    assert "Enter the same password in both boxes." in await body(mismatch)
    bad_name = await register(client, username="Bob Smith")
    assert bad_name.status_code == 400
    bad_email = await register(client, email="not an address")
    assert bad_email.status_code == 400
    weak = await register(client, password="short")
    assert weak.status_code == 400
    assert await aquery(settings, "SELECT count(*) FROM users") == [(0,)]
    assert await outbox(settings) == []


async def test_taken_username_is_said(
    app: Quart, auth: AuthActions, client: TestClientProtocol, settings: dict[str, Any]
) -> None:
    response = await register(client, username="alice")
    assert response.status_code == 400
    assert "That username is taken" in await body(response)
    assert await outbox(settings) == []


async def test_taken_username_is_said_only_after_the_rest_is_valid(
    auth: AuthActions, client: TestClientProtocol
) -> None:
    response = await register(client, username="alice", password2="does not match at all")
    assert "That username is taken" not in await body(response)


async def test_taken_address_looks_the_same_and_tells_its_owner(
    app: Quart, auth: AuthActions, client: TestClientProtocol, settings: dict[str, Any]
) -> None:
    await add_address(app, "alice@example.com")
    new = await register(client, username="carol", email="carol@example.com")
    taken = await register(client, username="mallory", email="Alice@example.com")
    assert (new.status_code, new.headers["Location"]) == (
        taken.status_code,
        taken.headers["Location"],
    )
    assert await users_named(settings, "mallory") == 0
    [note] = await outbox(settings, "signup-taken")
    assert note.recipient == "alice@example.com"
    assert "tried to register" in note.text
    assert "/reset_password_request" in note.text
    assert [m.recipient for m in await outbox(settings, "signup-confirm")] == ["carol@example.com"]


async def test_cli_confirm_and_list_unconfirmed(
    app: Quart, client: TestClientProtocol, runner: Any, settings: dict[str, Any]
) -> None:
    from tests.conftest import invoke

    await register(client)
    listed = await invoke(runner, "users", "list", "--unconfirmed")
    assert listed.exit_code == 0, listed.output
    assert "bob" in listed.output
    done = await invoke(runner, "users", "confirm", "bob")
    assert done.exit_code == 0, done.output
    assert "confirmed 'bob'" in done.output
    listed = await invoke(runner, "users", "list", "--unconfirmed")
    assert "bob" not in listed.output
    again = await invoke(runner, "users", "confirm", "bob")
    assert again.exit_code == 1
    missing = await invoke(runner, "users", "confirm", "nobody")
    assert missing.exit_code == 1
    auth = AuthActions(client)
    await auth.login("bob", NEW_PASSWORD)
    assert (await client.get("/hello")).status_code == 200


async def test_dead_and_malformed_links(client: TestClientProtocol) -> None:
    assert (await client.get("/confirm_email/" + "x" * 43)).status_code == 410
    assert (await client.get("/confirm_email/bad!")).status_code == 404


async def test_open_registration_without_mail_warns_and_stays_closed(
    settings: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app({**settings, "MAIL_URL": "none"})
    warnings = [r for r in caplog.records if r.name == "quartapp.signup"]
    assert len(warnings) == 1
    assert "REGISTRATION_OPEN" in warnings[0].getMessage()
    async with app.test_app():
        assert (await app.test_client().get("/register")).status_code == 404


async def test_signed_in_person_confirmed_elsewhere_is_let_go(
    app: Quart, client: TestClientProtocol, runner: Any, settings: dict[str, Any]
) -> None:
    from tests.conftest import invoke

    await register(client)
    await AuthActions(client).login("bob", NEW_PASSWORD)
    assert (await client.get("/hello")).headers["Location"] == "/confirm_email"
    await invoke(runner, "users", "confirm", "bob")
    page = await client.get("/confirm_email")
    assert page.headers["Location"] == "/hello"
    assert (await client.get("/hello")).status_code == 200
