"""What mail adds to ``users``: create --email, set-email, and the list's column."""

from __future__ import annotations

from typing import Any

import pytest
from quart import Quart

from tests.conftest import AuthActions, add_user, aquery, invoke

from .helpers import CONFIRM_LINK, add_address, link_in, outbox

PASSWORD_LINE = "a long enough passphrase for bob\n"


async def addresses(settings: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [
        (address, confirmed is not None)
        for address, confirmed in await aquery(
            settings, "SELECT address, confirmed_at FROM email_addresses ORDER BY user_id"
        )
    ]


async def test_create_with_email(app: Quart, runner: Any, settings: dict[str, Any]) -> None:
    result = await invoke(
        runner,
        "users",
        "create",
        "bob",
        "--email",
        "Bob@Example.COM",
        "--password-stdin",
        stdin=PASSWORD_LINE,
    )
    assert result.exit_code == 0, result.output
    assert "created user 'bob'" in result.output
    assert await addresses(settings) == [("Bob@example.com", True)]
    listed = await invoke(runner, "users", "list")
    assert "bob\t" in listed.output
    assert "Bob@example.com (confirmed)" in listed.output


async def test_create_unconfirmed_sends_link(
    app: Quart, runner: Any, settings: dict[str, Any]
) -> None:
    result = await invoke(
        runner,
        "users",
        "create",
        "bob",
        "--email",
        "bob@example.com",
        "--unconfirmed",
        "--password-stdin",
        stdin=PASSWORD_LINE,
    )
    assert result.exit_code == 0, result.output
    assert await addresses(settings) == [("bob@example.com", False)]
    (mail,) = await outbox(settings)
    assert mail.kind == "email-confirm"
    assert mail.recipient == "bob@example.com"
    link_in(mail, CONFIRM_LINK)
    assert "bob@example.com (unconfirmed)" in (await invoke(runner, "users", "list")).output


async def test_set_email(auth: AuthActions, runner: Any, settings: dict[str, Any]) -> None:
    result = await invoke(runner, "users", "set-email", "alice", "alice@example.com")
    assert result.exit_code == 0, result.output
    assert await addresses(settings) == [("alice@example.com", True)]
    # A second time: the old address is told.
    result = await invoke(runner, "users", "set-email", "alice", "new@example.com")
    assert result.exit_code == 0, result.output
    assert await addresses(settings) == [("new@example.com", True)]
    (told,) = await outbox(settings, "email-changed")
    assert told.recipient == "alice@example.com"


async def test_set_email_unconfirmed_keeps_the_old(
    app: Quart, auth: AuthActions, runner: Any, settings: dict[str, Any]
) -> None:
    await add_address(app, "alice@example.com")
    result = await invoke(
        runner, "users", "set-email", "alice", "new@example.com", "--unconfirmed"
    )
    assert result.exit_code == 0, result.output
    assert await addresses(settings) == [("alice@example.com", True)]
    assert [m.recipient for m in await outbox(settings, "email-confirm")] == ["new@example.com"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["set-email", "alice", "not-an-address"], "is not an email address"),
        (["set-email", "alice", "bob@example.com"], "is another account's address"),
        (["set-email", "nobody", "x@example.com"], "nobody"),
        (
            ["create", "carol", "--email", "bob@example.com", "--password-stdin"],
            "another account's",
        ),
        (["create", "carol", "--email", "bad", "--password-stdin"], "not an email address"),
    ],
)
async def test_refusals_are_one_line(
    app: Quart,
    auth: AuthActions,
    runner: Any,
    settings: dict[str, Any],
    args: list[str],
    message: str,
) -> None:
    await add_user(app, "bob")
    await add_address(app, "bob@example.com", name="bob")
    result = await invoke(runner, "users", *args, stdin=PASSWORD_LINE)
    assert result.exit_code == 1
    assert message in result.output
    assert result.output.startswith("Error: ")
    assert result.output.count("\n") == 1
    assert ("carol",) not in await aquery(settings, "SELECT username FROM users")


async def test_usage_error_exits_2(auth: AuthActions, runner: Any) -> None:
    result = await invoke(runner, "users", "set-email", "alice")
    assert result.exit_code == 2
