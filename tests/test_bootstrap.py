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
from tests.conftest import TEST_SECRET_KEY, AuthActions, add_user, body, stored_hash, usernames

# The outcomes here can depend on the database (the rule: tests/conftest.py).
pytestmark = pytest.mark.both_databases


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


async def test_first_run_creates_admin(first_run: dict[str, Any]) -> None:
    async with serving(first_run):
        pass

    assert usernames(first_run) == ["admin"]


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


async def test_first_run_admin_is_made_only_once(first_run: dict[str, Any]) -> None:
    async with serving(first_run):
        pass
    first_password = admin_password_file(first_run).read_text()
    first_hash = stored_hash(first_run, "admin")

    async with serving(first_run):
        pass

    assert usernames(first_run) == ["admin"]
    assert admin_password_file(first_run).read_text() == first_password
    assert stored_hash(first_run, "admin") == first_hash


async def test_no_admin_when_users_exist(first_run: dict[str, Any]) -> None:
    async with serving({**first_run, "INITIAL_ADMIN": False}) as app:
        await add_user(app)

    async with serving(first_run):
        pass

    assert usernames(first_run) == ["alice"]
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

    assert usernames(settings) == []
    assert not admin_password_file(settings).exists()
