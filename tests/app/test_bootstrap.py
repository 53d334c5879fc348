"""Tests for the first run: the ``admin`` account a new development machine gets."""

from __future__ import annotations

import logging
import re
import stat
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from quart import Quart

from quartapp import bootstrap, create_app
from tests.conftest import (
    BOTH_DATABASES,
    TEST_SECRET_KEY,
    AuthActions,
    add_user,
    astored_hash,
    ausernames,
    body,
    csrf_token,
    invoke,
)

# The tests marked BOTH_DATABASES are those whose outcome can depend on the database
# (the rule: tests/conftest.py); the rest run on SQLite alone.


@asynccontextmanager
async def serving(settings: dict[str, Any]) -> AsyncIterator[Quart]:
    app = create_app(settings)
    async with app.test_app():
        yield app


def admin_password_file(settings: dict[str, Any]) -> Path:
    return Path(settings["INSTANCE_PATH"]) / bootstrap.INITIAL_ADMIN_FILE


@pytest.fixture
def first_run(settings: dict[str, Any]) -> dict[str, Any]:
    """Development settings on an empty database with the first-run admin switched on."""
    return {**settings, "INITIAL_ADMIN": True}


# The first-run admin


@BOTH_DATABASES
async def test_first_run_creates_admin(first_run: dict[str, Any]) -> None:
    async with serving(first_run):
        pass

    assert await ausernames(first_run) == ["admin"]


async def test_first_run_writes_the_admin_password_to_a_private_file(
    first_run: dict[str, Any],
) -> None:
    async with serving(first_run):
        pass

    path = admin_password_file(first_run)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert re.fullmatch(r"\S{15,}\n", path.read_text())


async def test_first_run_admin_password_logs_in_through_the_form(
    first_run: dict[str, Any],
) -> None:
    async with serving(first_run) as app:
        password = admin_password_file(first_run).read_text().removesuffix("\n")
        browser = app.test_client()

        response = await AuthActions(browser).login("admin", password)
        page = await browser.get("/hello")

        assert (response.status_code, response.headers["Location"]) == (302, "/hello")
        assert "Hello, admin!" in await body(page)


async def test_first_run_logs_the_admin_password_once(
    first_run: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)

    async with serving(first_run):
        pass
    async with serving(first_run):
        pass

    password = admin_password_file(first_run).read_text().removesuffix("\n")
    mentions = [record for record in caplog.records if password in record.getMessage()]
    assert len(mentions) == 1
    assert mentions[0].levelno == logging.WARNING


@BOTH_DATABASES
async def test_first_run_admin_is_made_only_once(first_run: dict[str, Any]) -> None:
    async with serving(first_run):
        pass
    first_password = admin_password_file(first_run).read_text()
    first_hash = await astored_hash(first_run, "admin")

    async with serving(first_run):
        pass

    assert await ausernames(first_run) == ["admin"]
    assert admin_password_file(first_run).read_text() == first_password
    assert await astored_hash(first_run, "admin") == first_hash


@BOTH_DATABASES
async def test_no_admin_when_users_exist(first_run: dict[str, Any]) -> None:
    async with serving({**first_run, "INITIAL_ADMIN": False}) as app:
        await add_user(app)

    async with serving(first_run):
        pass

    assert await ausernames(first_run) == ["alice"]
    assert not admin_password_file(first_run).exists()


@pytest.mark.parametrize(
    "changes",
    [
        {
            "ENV": "production",
            "SECRET_KEY": TEST_SECRET_KEY,
            "TESTING": False,
            "TRUSTED_HOSTS": ["localhost"],
        },
        {"INITIAL_ADMIN": False},
    ],
    ids=["production", "switched-off"],
)
async def test_no_admin_on_an_empty_database(
    first_run: dict[str, Any], changes: dict[str, Any]
) -> None:
    settings = {**first_run, **changes}

    async with serving(settings):
        pass

    assert await ausernames(settings) == []
    assert not admin_password_file(settings).exists()


async def test_first_run_line_names_the_account_page_and_the_cli(
    first_run: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)

    async with serving(first_run):
        pass

    [line] = [r.getMessage() for r in caplog.records if "created user 'admin'" in r.getMessage()]
    assert "/account/password" in line
    assert "users set-password admin" in line


# The password file goes once the admin has a password of their own

NEW_PASSWORD = "a brand new passphrase, also long"


async def test_changing_the_admin_password_on_the_web_deletes_the_file(
    first_run: dict[str, Any],
) -> None:
    async with serving(first_run) as app:
        password = admin_password_file(first_run).read_text().removesuffix("\n")
        browser = app.test_client()
        await AuthActions(browser).login("admin", password)
        form = {
            "current_password": password,
            "new_password": NEW_PASSWORD,
            "new_password2": NEW_PASSWORD,
            "csrf_token": await csrf_token(browser, "/account/password"),
        }

        response = await browser.post("/account/password", form=form)

    assert response.status_code == 302
    assert not admin_password_file(first_run).exists()


async def test_the_admin_closing_their_account_on_the_web_deletes_the_file(
    first_run: dict[str, Any],
) -> None:
    async with serving(first_run) as app:
        password = admin_password_file(first_run).read_text().removesuffix("\n")
        browser = app.test_client()
        await AuthActions(browser).login("admin", password)
        form = {"username": "admin", "csrf_token": await csrf_token(browser, "/account/delete")}

        response = await browser.post("/account/delete", form=form)

    assert response.status_code == 302
    assert not admin_password_file(first_run).exists()


async def test_a_refused_change_keeps_the_file(first_run: dict[str, Any]) -> None:
    async with serving(first_run) as app:
        password = admin_password_file(first_run).read_text().removesuffix("\n")
        browser = app.test_client()
        await AuthActions(browser).login("admin", password)
        form = {
            "current_password": "not the password at all, sorry",
            "new_password": NEW_PASSWORD,
            "new_password2": NEW_PASSWORD,
            "csrf_token": await csrf_token(browser, "/account/password"),
        }

        response = await browser.post("/account/password", form=form)

    assert response.status_code == 200
    assert admin_password_file(first_run).read_text() == password + "\n"


@pytest.mark.parametrize(
    ("command", "stdin"),
    [
        (["set-password", "admin", "--password-stdin"], NEW_PASSWORD + "\n"),
        (["delete", "admin", "--yes"], None),
    ],
    ids=["set-password", "delete"],
)
async def test_the_cli_deletes_the_file_with_the_admins_password(
    first_run: dict[str, Any], command: list[str], stdin: str | None
) -> None:
    async with serving(first_run):
        pass
    assert admin_password_file(first_run).exists()
    runner = create_app(first_run).test_cli_runner()

    result = await invoke(runner, "users", *command, stdin=stdin)

    assert result.exit_code == 0, result.output
    assert not admin_password_file(first_run).exists()


async def test_another_users_new_password_keeps_the_file(first_run: dict[str, Any]) -> None:
    async with serving(first_run) as app:
        await add_user(app)
    runner = create_app(first_run).test_cli_runner()

    result = await invoke(
        runner, "users", "set-password", "alice", "--password-stdin", stdin=NEW_PASSWORD + "\n"
    )

    assert result.exit_code == 0, result.output
    assert admin_password_file(first_run).exists()
