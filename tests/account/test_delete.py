"""Closing an account: /account/delete and ``users delete`` through one flow.

The tests that count rows, end logins or read the outbox run on SQLite and PostgreSQL
(the delete's cascade and triggers are the database's); pages and forms on SQLite.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from email import message_from_string
from email.policy import default
from typing import TYPE_CHECKING, Any

import pyotp
import pytest
from quart import Quart
from quart.testing import QuartCliRunner

from quartapp import create_app
from quartapp.account.leaving import CLOSED_MESSAGE, WRONG_NAME
from quartapp.auth import flows
from quartapp.auth import settings as auth_settings
from quartapp.auth.reauth import CONFIRM_FIRST, CONFIRM_STRONG
from tests.conftest import (
    BOTH_DATABASES,
    POSTGRES_ONLY,
    AuthActions,
    add_user,
    aquery,
    ausernames,
    body,
    csrf_token,
    invoke,
)
from tests.support.twofactor import SECOND_STEP, second_step, steady

from .leaving import SECRET, counters, owned, seed

if TYPE_CHECKING:
    from quart.typing import TestClientProtocol

DELETE = "/account/delete"


async def delete(client: TestClientProtocol, username: str) -> Any:
    """Send the delete form as its page's browser would, CSRF token included."""
    token = await csrf_token(client, DELETE)
    return await client.post(DELETE, form={"username": username, "csrf_token": token})


async def sign_in_with_code(auth: AuthActions, name: str = "alice") -> None:
    """Password, then a TOTP code of the seeded key: a fresh login proven with it."""
    steady()
    first = await auth.login(name)
    assert first.headers["Location"] == SECOND_STEP
    response = await second_step(auth.client, pyotp.TOTP(SECRET).now())
    assert response.status_code == 302, await body(response)


async def outbox(settings: dict[str, Any]) -> list[tuple[Any, ...]]:
    return await aquery(
        settings, "SELECT kind, user_id, recipient, message FROM mail_outbox ORDER BY id"
    )


@BOTH_DATABASES
async def test_deleting_takes_every_row_of_the_person_and_no_one_elses(
    app: Quart, client: TestClientProtocol, settings: dict[str, Any]
) -> None:
    await add_user(app, "alice")
    await add_user(app, "bob")
    other_browser = AuthActions(app.test_client())
    await other_browser.login("alice")
    bobs = AuthActions(app.test_client())
    await bobs.login("bob")
    alice_id = await seed(app, "alice")
    bob_id = await seed(app, "bob", totp=False)
    auth = AuthActions(client)
    await sign_in_with_code(auth)
    bob_before = await owned(settings, bob_id)

    response = await delete(client, "Alice")

    assert response.status_code == 302
    assert response.headers["Location"] == "/login"
    assert CLOSED_MESSAGE in await body(await client.get("/login"))
    assert await ausernames(settings) == ["bob"]
    assert set((await owned(settings, alice_id)).values()) == {0}
    assert await owned(settings, bob_id) == bob_before
    assert ("user", "alice") not in await counters(settings)
    assert ("device", "alice-device") not in await counters(settings)
    assert {("user", "bob"), ("device", "bob-device")} <= set(await counters(settings))
    # Every session of hers ended: this browser's and the other one's; bob's stands.
    assert (await client.get("/hello")).status_code == 302
    assert (await other_browser.client.get("/hello")).status_code == 302
    assert (await bobs.client.get("/hello")).status_code == 200
    # Her pending mail is gone; the last email, to her confirmed address, is not hers.
    kinds = [(kind, user_id, to) for kind, user_id, to, _ in await outbox(settings)]
    assert ("account-closed", None, "alice@example.test") in kinds
    assert [k for k in kinds if k[2] == "alice@example.test"] == [
        ("account-closed", None, "alice@example.test")
    ]


async def test_the_last_email_says_the_account_was_closed(
    app: Quart, auth: AuthActions, settings: dict[str, Any]
) -> None:
    await seed(app, "alice", totp=False)
    await aquery(settings, "DELETE FROM passkeys")  # a password login is then enough
    await auth.login()

    await delete(auth.client, "alice")

    ((_, _, to, raw),) = [row for row in await outbox(settings) if row[0] == "account-closed"]
    message = message_from_string(raw, policy=default)
    text = message.get_body(preferencelist=("plain",))
    assert to == "alice@example.test"
    assert message["Subject"] == "Your account was closed"
    assert text is not None
    assert "Your account was closed, as you asked." in str(text.get_content())


async def test_an_account_without_a_confirmed_address_gets_no_email(
    auth: AuthActions, settings: dict[str, Any]
) -> None:
    await auth.login()

    response = await delete(auth.client, "alice")

    assert response.status_code == 302
    assert await ausernames(settings) == []
    assert await outbox(settings) == []


async def test_a_wrong_username_is_a_400_and_deletes_nothing(
    auth: AuthActions, settings: dict[str, Any]
) -> None:
    await auth.login()

    response = await delete(auth.client, "bob")

    assert response.status_code == 400
    page = await body(response)
    assert WRONG_NAME in page
    assert "Error: Close your account" in page
    assert await ausernames(settings) == ["alice"]
    assert (await auth.client.get("/hello")).status_code == 200


async def test_an_empty_username_is_a_400(auth: AuthActions, settings: dict[str, Any]) -> None:
    await auth.login()

    response = await delete(auth.client, "")

    assert response.status_code == 400
    assert "Type your username to close your account." in await body(response)
    assert await ausernames(settings) == ["alice"]


async def test_a_post_without_its_csrf_token_is_refused(
    auth: AuthActions, settings: dict[str, Any]
) -> None:
    await auth.login()

    response = await auth.client.post(DELETE, form={"username": "alice"})

    assert response.status_code == 400
    assert await ausernames(settings) == ["alice"]


async def test_the_page_needs_a_login(client: TestClientProtocol) -> None:
    response = await client.get(DELETE)

    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")


async def test_deleting_needs_a_fresh_login(auth: AuthActions, settings: dict[str, Any]) -> None:
    await auth.login()
    token = await csrf_token(auth.client, DELETE)
    await aquery(settings, f"UPDATE logins SET verified_at = {time.time() - 86400}")

    page = await auth.client.get(DELETE)
    response = await auth.client.post(DELETE, form={"username": "alice", "csrf_token": token})

    for answer in (page, response):
        assert answer.status_code == 302
        assert answer.headers["Location"] == "/login/confirm?next=/account/delete"
    confirm = await body(await auth.client.get("/login/confirm"))
    assert CONFIRM_FIRST.replace("'", "&#39;") in confirm
    assert await ausernames(settings) == ["alice"]


async def test_with_a_second_factor_the_password_alone_does_not_delete(
    app: Quart, auth: AuthActions, settings: dict[str, Any]
) -> None:
    await seed(app, "alice", totp=False)  # a passkey
    await auth.login()

    response = await auth.client.get(DELETE)

    assert response.status_code == 302
    assert response.headers["Location"] == "/login/confirm?next=/account/delete"
    page = await body(await auth.client.get("/login/confirm"))
    assert CONFIRM_STRONG.replace("'", "&#39;") in page
    assert await ausernames(settings) == ["alice"]


async def test_the_sessions_page_links_to_export_and_delete(auth: AuthActions) -> None:
    await auth.login()

    page = await body(await auth.client.get("/account/sessions"))

    assert 'href="/account/delete"' in page
    assert 'href="/account/export"' in page


async def test_the_close_button_has_the_warning_style(auth: AuthActions) -> None:
    await auth.login()

    page = await body(await auth.client.get("/account/delete"))

    assert (
        'class="button-warning" id="submit" name="submit" type="submit" value="Close my account"'
        in page
    )
    assert '<a class="button-secondary" href="/account">Cancel</a>' in page


async def test_the_audit_log_keeps_a_keyed_pseudonym_not_the_name(
    app: Quart, auth: AuthActions, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="quartapp.audit")
    await auth.login()

    await delete(auth.client, "alice")

    lines = [r.getMessage() for r in caplog.records if r.name == "quartapp.audit"]
    (deleted,) = [json.loads(line) for line in lines if '"user_deleted"' in line]
    expected = flows.pseudonym(auth_settings.of(app), "alice")
    assert (deleted["user"], deleted["by"], deleted["sessions_ended"]) == (expected, "user", 1)
    assert "alice" not in json.dumps(deleted)
    assert expected.startswith("hmac-sha256:")
    assert len(expected) == len("hmac-sha256:") + 16


def test_the_pseudonym_is_keyed() -> None:
    one = create_app({"SECRET_KEY": "one" * 12, "TESTING": True, "INITIAL_ADMIN": False})
    two = create_app({"SECRET_KEY": "two" * 12, "TESTING": True, "INITIAL_ADMIN": False})

    first = flows.pseudonym(auth_settings.of(one), "alice")

    assert first == flows.pseudonym(auth_settings.of(one), "alice")
    assert first != flows.pseudonym(auth_settings.of(two), "alice")
    assert first != flows.pseudonym(auth_settings.of(one), "bob")


# users delete: the same flow from the command line


@BOTH_DATABASES
async def test_users_delete_takes_every_row_too_and_tells_the_person(
    app: Quart, auth: AuthActions, runner: QuartCliRunner, settings: dict[str, Any]
) -> None:
    await auth.login()
    alice_id = await seed(app, "alice")

    result = await invoke(runner, "users", "delete", "alice", "--yes")

    assert (result.exit_code, result.stdout) == (0, "deleted user 'alice'\n")
    assert await ausernames(settings) == []
    assert set((await owned(settings, alice_id)).values()) == {0}
    assert await counters(settings) == []
    assert (await auth.client.get("/hello")).status_code == 302
    ((kind, user_id, to, raw),) = await outbox(settings)
    assert (kind, user_id, to) == ("account-closed", None, "alice@example.test")
    text = message_from_string(raw, policy=default).get_body(preferencelist=("plain",))
    assert text is not None
    assert "An administrator closed your account." in str(text.get_content())


@POSTGRES_ONLY
async def test_another_process_refuses_a_cached_login_of_a_deleted_account(
    settings: dict[str, Any],
) -> None:
    from tests.auth.test_login_listener import cache_ready, login_lookups

    here, there = create_app(settings), create_app(settings)
    async with here.test_app(), there.test_app():
        await add_user(here)
        mine = AuthActions(here.test_client())
        await mine.login()
        theirs = AuthActions(there.test_client())
        await theirs.login()
        await cache_ready(there)
        assert (await theirs.client.get("/hello")).status_code == 200
        with login_lookups(there) as lookups:
            assert (await theirs.client.get("/hello")).status_code == 200
        assert lookups == []  # answered from that process's cache

        await delete(mine.client, "alice")

        # Only the notification tells the other process: its cache would answer 200.
        deadline = time.monotonic() + 10
        while (status := (await theirs.client.get("/hello")).status_code) == 200:
            assert time.monotonic() < deadline, "the other process kept the login"
            await asyncio.sleep(0.01)
    assert status == 302
