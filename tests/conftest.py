"""Shared fixtures: a fresh app on a temporary SQLite file, its clients, and helpers."""

from __future__ import annotations

import os
import re
import sqlite3
from collections.abc import AsyncIterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from quart import Quart
from quart.testing import QuartClient, QuartCliRunner
from werkzeug.wrappers import Response as WerkzeugResponse

from quartapp import create_app, users
from quartapp.db import db
from quartapp.passwords import passwords

# Fixed test keys, 43 characters like the output of `python -m quartapp.keys`.
TEST_SECRET_KEY = "test-secret-key-0123456789abcdefghijklmnopq"
TEST_CSRF_KEY = "test-csrf-key-0123456789abcdefghijklmnopqrs"
PASSWORD = "correct horse battery staple"
CSRF_INPUT = re.compile(r'<input[^>]*name="csrf_token"[^>]*>')
VALUE = re.compile(r'value="([^"]+)"')


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Keep the developer's shell and the repo's instance/ folder out of every test."""
    for name in list(os.environ):
        if name.startswith("QUARTAPP_") or name in ("SECRET_KEY", "DATABASE_URL"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("QUARTAPP_INSTANCE_PATH", str(tmp_path / "instance"))


def make_settings(tmp_path: Path, **extra: Any) -> dict[str, Any]:
    """Settings for a test app: its own SQLite file, fixed keys, the cheapest hashing."""
    return {
        "TESTING": True,
        "SECRET_KEY": TEST_SECRET_KEY,
        "WTF_CSRF_SECRET_KEY": TEST_CSRF_KEY,
        "INSTANCE_PATH": str(tmp_path / "instance"),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'test.db'}",
        "ARGON2_MEMORY_COST": 19456,
        "ARGON2_TIME_COST": 2,
        "INITIAL_ADMIN": False,
        "TRUSTED_HOSTS": ["localhost"],
        **extra,
    }


@pytest.fixture
def settings(tmp_path: Path) -> dict[str, Any]:
    """The overrides the ``app`` fixture uses; tests may change them first."""
    return make_settings(tmp_path)


@pytest.fixture
async def app(settings: dict[str, Any]) -> AsyncIterator[Quart]:
    """A started app (database open, startup hooks run) on a fresh SQLite file."""
    application = create_app(settings)
    async with application.test_app():
        yield application


@pytest.fixture
def client(app: Quart) -> QuartClient:
    """A test client that keeps cookies like a browser."""
    return app.test_client()


@pytest.fixture
def runner(settings: dict[str, Any]) -> QuartCliRunner:
    """A CLI runner for an app on the same database as the ``app`` fixture."""
    return create_app(settings).test_cli_runner()


def database_path(settings: dict[str, Any]) -> Path:
    """The SQLite file that the app, the CLI and the tests share."""
    return Path(settings["DATABASE_URL"].removeprefix("sqlite:///"))


def query(settings: dict[str, Any], sql: str) -> list[tuple[Any, ...]]:
    """Rows straight from the database file, bypassing the app."""
    with closing(sqlite3.connect(database_path(settings))) as connection:
        return connection.execute(sql).fetchall()


def usernames(settings: dict[str, Any]) -> list[str]:
    """Every stored username, sorted."""
    return [name for (name,) in query(settings, "SELECT username FROM users ORDER BY username")]


def stored_hash(settings: dict[str, Any], name: str = "alice") -> str:
    """The password hash stored for ``name``."""
    return str(dict(query(settings, "SELECT username, password_hash FROM users"))[name])


def login_count(settings: dict[str, Any]) -> int:
    """How many server-side login rows exist."""
    return int(query(settings, "SELECT count(*) FROM logins")[0][0])


def cookie_value(client: QuartClient) -> str:
    """The session cookie a test client holds."""
    assert client.cookie_jar is not None
    values = [c.value for c in client.cookie_jar if c.name == "session"]
    assert len(values) == 1
    return values[0] or ""


def replay(app: Quart, value: str) -> QuartClient:
    """A new browser that presents a copied session cookie."""
    other = app.test_client()
    other.set_cookie("localhost", "session", value)
    return other


async def add_user(app: Quart, name: str = "alice", password: str = PASSWORD) -> None:
    """Create an account directly in the app's database."""
    async with app.app_context(), db.session() as session:
        await users.create_user(session, passwords(), app.config, name, password)


async def body(response: WerkzeugResponse) -> str:
    """A response's text."""
    return await response.get_data(as_text=True)  # type: ignore[no-any-return]


async def csrf_token(client: QuartClient, path: str = "/login") -> str:
    """The CSRF token from the form on ``path``, read like a browser would."""
    response = await client.get(path)
    field = CSRF_INPUT.search(await body(response))
    assert field, f"no CSRF field on {path}"
    value = VALUE.search(field.group(0))
    assert value, f"empty CSRF field on {path}"
    return value.group(1)


@dataclass
class AuthActions:
    """Log in and out through the real forms, CSRF token included."""

    client: QuartClient

    async def login(
        self,
        username: str = "alice",
        password: str = PASSWORD,
        *,
        remember: bool = False,
        path: str = "/login",
    ) -> WerkzeugResponse:
        form = {
            "username": username,
            "password": password,
            "csrf_token": await csrf_token(self.client, path),
        }
        if remember:
            form["remember_me"] = "y"
        return await self.client.post(path, form=form)

    async def logout(self) -> WerkzeugResponse:
        token = await csrf_token(self.client, "/logout")
        return await self.client.post("/logout", form={"csrf_token": token})


@pytest.fixture
async def auth(app: Quart, client: QuartClient) -> AuthActions:
    """``alice`` exists, and ``auth.login()`` / ``auth.logout()`` act as her browser."""
    await add_user(app)
    return AuthActions(client)


# The browser tests' fixtures and summary line (Chromium through pytest-playwright).
pytest_plugins = ["tests.browser"]
