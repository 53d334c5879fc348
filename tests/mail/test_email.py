"""Change of address at /account/email: a link to the new address, the old one told."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from quart import Quart

from quartapp.db import db
from quartapp.mail import addresses
from quartapp.mail.addresses import AddressError
from tests.conftest import BOTH_DATABASES, AuthActions, add_user, aquery, body, csrf_token

from .helpers import CONFIRM_LINK, add_address, link_in, outbox, tokens_of

if TYPE_CHECKING:
    from quart.typing import TestClientProtocol

PAGE = "/account/email"


async def ask(client: TestClientProtocol, address: str) -> Any:
    token = await csrf_token(client, PAGE)
    return await client.post(PAGE, form={"email": address, "csrf_token": token})


async def confirm(client: TestClientProtocol, token: str) -> Any:
    """Follow a confirmation link and press its button."""
    response = await client.get(f"/account/email/confirm/{token}")
    assert response.status_code == 302
    assert response.headers["Location"] == "/account/email/confirm"
    form = await csrf_token(client, "/account/email/confirm")
    return await client.post("/account/email/confirm", form={"csrf_token": form})


async def stored(settings: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [
        (address, confirmed is not None)
        for address, confirmed in await aquery(
            settings, "SELECT address, confirmed_at FROM email_addresses ORDER BY user_id"
        )
    ]


@pytest.fixture
async def alice(app: Quart, auth: AuthActions) -> AuthActions:
    """alice, signed in, with the confirmed address alice@example.com."""
    await add_address(app, "alice@example.com")
    await auth.login()
    return auth


async def test_account_page_links_to_it(alice: AuthActions) -> None:
    page = await body(await alice.client.get("/account/sessions"))
    assert f'href="{PAGE}"' in page


async def test_change_of_address(alice: AuthActions, settings: dict[str, Any]) -> None:
    response = await ask(alice.client, "New@Example.org")
    assert response.status_code == 302
    assert "We sent a link to New@example.org" in await body(await alice.client.get(PAGE))
    (link,) = await outbox(settings, "email-confirm")
    assert link.recipient == "New@example.org"
    (told,) = await outbox(settings, "email-change-requested")
    assert told.recipient == "alice@example.com"
    # Until confirmed, the old address stays in force.
    assert await stored(settings) == [("alice@example.com", True)]

    token = link_in(link, CONFIRM_LINK)
    page = await alice.client.get(f"/account/email/confirm/{token}")
    assert page.status_code == 302
    shown = await body(await alice.client.get("/account/email/confirm"))
    assert "New@example.org" in shown
    assert "Confirm this address" in shown
    # A GET never confirms.
    assert await stored(settings) == [("alice@example.com", True)]

    done = await confirm(alice.client, token)
    assert done.status_code == 302
    assert await stored(settings) == [("New@example.org", True)]
    (changed,) = await outbox(settings, "email-changed")
    assert changed.recipient == "alice@example.com"
    assert "was changed to New@example.org" in changed.text
    # The link works once.
    again = await alice.client.get(f"/account/email/confirm/{token}")
    assert again.status_code == 302
    assert (await alice.client.get("/account/email/confirm")).status_code == 410


async def test_change_ends_reset_links(alice: AuthActions, settings: dict[str, Any]) -> None:
    form = await csrf_token(alice.client, "/reset_password_request")
    await alice.client.post(
        "/reset_password_request", form={"email": "alice@example.com", "csrf_token": form}
    )
    await ask(alice.client, "new@example.org")
    await confirm(
        alice.client, link_in((await outbox(settings, "email-confirm"))[0], CONFIRM_LINK)
    )
    assert all(
        used is not None for purpose, _, used in await tokens_of(settings) if purpose == "reset"
    )


async def test_taken_address_same_answer_no_link(
    app: Quart, alice: AuthActions, settings: dict[str, Any]
) -> None:
    await add_user(app, "bob")
    await add_address(app, "bob@example.com", name="bob")
    response = await ask(alice.client, "BOB@example.com")
    assert response.status_code == 302
    assert "We sent a link to BOB@example.com" in await body(await alice.client.get(PAGE))
    assert await outbox(settings, "email-confirm") == []
    assert len(await outbox(settings, "email-change-requested")) == 1


async def test_user_without_address_adds_one(auth: AuthActions, settings: dict[str, Any]) -> None:
    await auth.login()
    page = await body(await auth.client.get(PAGE))
    assert "has no email address" in page
    await ask(auth.client, "alice@example.com")
    (link,) = await outbox(settings)
    assert link.kind == "email-confirm"
    assert await stored(settings) == []
    await confirm(auth.client, link_in(link, CONFIRM_LINK))
    assert await stored(settings) == [("alice@example.com", True)]


async def test_confirm_without_login(
    alice: AuthActions, app: Quart, settings: dict[str, Any]
) -> None:
    await ask(alice.client, "new@example.org")
    token = link_in((await outbox(settings, "email-confirm"))[0], CONFIRM_LINK)
    response = await confirm(app.test_client(), token)
    assert response.status_code == 302
    assert response.headers["Location"] == "/login"
    assert await stored(settings) == [("new@example.org", True)]


async def test_needs_login(client: TestClientProtocol) -> None:
    response = await client.get(PAGE)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")


async def test_needs_fresh_login(alice: AuthActions, settings: dict[str, Any]) -> None:
    await aquery(settings, "UPDATE logins SET verified_at = verified_at - 86400")
    response = await alice.client.get(PAGE)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login/confirm")


@pytest.mark.parametrize("address", ["nope", "a@b", "x@" + "y" * 300 + ".example"])
async def test_bad_address_is_a_form_error(alice: AuthActions, address: str) -> None:
    response = await ask(alice.client, address)
    assert response.status_code == 400
    assert "Error: Your email address" in await body(response)


async def test_same_address_is_a_form_error(alice: AuthActions) -> None:
    response = await ask(alice.client, "ALICE@example.com")
    assert response.status_code == 400
    assert "That is your address already." in await body(response)


async def test_confirm_page_without_link(client: TestClientProtocol) -> None:
    assert (await client.get("/account/email/confirm")).status_code == 400


@BOTH_DATABASES
async def test_unique_whatever_the_case(app: Quart, auth: AuthActions) -> None:
    await add_user(app, "bob")
    async with app.app_context(), db.session() as dbs:
        await addresses.store(dbs, 1, addresses.normalise("Ann@Example.com"), confirmed=True)
        await dbs.commit()
        with pytest.raises(AddressError):
            await addresses.store(dbs, 2, addresses.normalise("ann@EXAMPLE.com"), confirmed=True)


async def test_links_are_limited(alice: AuthActions, settings: dict[str, Any]) -> None:
    for _ in range(3):
        assert (await ask(alice.client, "new@example.org")).status_code == 302
    response = await ask(alice.client, "new@example.org")
    assert response.status_code == 429
    assert "Too many links" in await body(response)
    assert len(await outbox(settings, "email-confirm")) == 3


@BOTH_DATABASES
async def test_index_refuses_one_key_twice(app: Quart, auth: AuthActions) -> None:
    """The unique index decides when two requests race past the SELECT of :func:`store`."""
    from sqlalchemy.exc import IntegrityError

    from quartapp.mail.models import EmailAddress

    await add_user(app, "bob")
    async with app.app_context(), db.session() as dbs:
        for user_id, address in ((1, "Ann@example.com"), (2, "ann@example.com")):
            dbs.add(
                EmailAddress(
                    user_id=user_id,
                    address=address,
                    address_key=address.lower(),
                    created_at=0.0,
                    confirmed_at=0.0,
                )
            )
        with pytest.raises(IntegrityError):
            await dbs.commit()
