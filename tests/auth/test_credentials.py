"""Tests for checking a password: throttled, case-insensitive names, rehashing, the pool."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal

import pytest
from argon2 import PasswordHasher
from quart import Quart

from quartapp import create_app
from quartapp.auth import credentials
from quartapp.auth import settings as auth_settings
from quartapp.auth.models import User
from quartapp.auth.passwords import passwords
from quartapp.db import db
from tests.conftest import (
    BOTH_DATABASES,
    PASSWORD,
    AuthActions,
    add_user,
    astored_hash,
    both_databases_for,
)

# The tests on both databases are those whose outcome can depend on the database (the
# rule: tests/conftest.py): the user's lookup, found or not, the rehash's UPDATE and the
# pool while hashing. A name is lower-cased and a password checked in Python, so the
# other cases of a parametrized test run on SQLite alone.

HASH_PARAMETERS = re.compile(r"\$argon2id\$v=19\$m=(\d+),t=(\d+),p=(\d+)\$")


@asynccontextmanager
async def serving(settings: dict[str, Any]) -> AsyncIterator[Quart]:
    app = create_app(settings)
    async with app.test_app():
        yield app


def parameters(password_hash: str) -> tuple[int, int, int]:
    """Memory, time and parallelism of an argon2id hash, read from its prefix."""
    match = HASH_PARAMETERS.match(password_hash)
    assert match, f"not an argon2id hash: {password_hash!r}"
    memory, time, lanes = map(int, match.groups())
    return memory, time, lanes


@pytest.fixture
async def alice(app: Quart) -> None:
    """``alice`` exists with ``PASSWORD``."""
    await add_user(app)


async def authenticate(app: Quart, name: str, password: str) -> User | None:
    async with app.app_context():
        checked = await credentials.check(
            auth_settings.of(app),
            passwords(),
            username=name,
            password=password,
            address="192.0.2.1",
            cookies={},
        )
        return checked.user


# authenticate


# One SELECT by name for every case: a missing row and a wrong password on PostgreSQL.
@pytest.mark.usefixtures("alice")
@both_databases_for(
    "name, password",
    [
        ("nobody", PASSWORD),
        ("alice", "not the right password"),
        ("alice", ""),
        ("alice", f"{PASSWORD} "),
        ("alice", f" {PASSWORD}"),
        ("alice", PASSWORD[:-1]),
        ("alice", PASSWORD.upper()),
        ("alice", PASSWORD.capitalize()),
    ],
    [
        "unknown-user",
        "wrong-password",
        "empty-password",
        "trailing-space",
        "leading-space",
        "truncated",
        "upper-case",
        "capitalized",
    ],
    postgres=["unknown-user", "wrong-password"],
)
async def test_authenticate_refuses(app: Quart, name: str, password: str) -> None:
    assert await authenticate(app, name, password) is None


# The name is lower-cased before the one SELECT: one case on PostgreSQL.
@pytest.mark.usefixtures("alice")
@both_databases_for(
    "name", ["alice", "ALICE", "aLiCe"], ["alice", "ALICE", "aLiCe"], postgres=["aLiCe"]
)
async def test_authenticate_finds_the_username_in_any_case(app: Quart, name: str) -> None:
    user = await authenticate(app, name, PASSWORD)

    assert user is not None
    assert user.username == "alice"


# Rehashing when the argon2 parameters change


@BOTH_DATABASES
async def test_login_upgrades_a_hash_made_with_older_parameters(
    settings: dict[str, Any],
) -> None:
    async with serving(settings) as app:
        await add_user(app)
    assert parameters(await astored_hash(settings)) == (19456, 2, 1)

    async with serving({**settings, "ARGON2_TIME_COST": 3}) as app:
        response = await AuthActions(app.test_client()).login()

    assert response.status_code == 302
    upgraded = await astored_hash(settings)
    assert parameters(upgraded) == (19456, 3, 1)
    assert PasswordHasher().verify(upgraded, PASSWORD)


async def test_failed_login_keeps_a_hash_made_with_older_parameters(
    settings: dict[str, Any],
) -> None:
    async with serving(settings) as app:
        await add_user(app)
    original = await astored_hash(settings)

    async with serving({**settings, "ARGON2_TIME_COST": 3}) as app:
        await AuthActions(app.test_client()).login(password="not the right password")

    assert await astored_hash(settings) == original


class PoolWatchingHasher(PasswordHasher):
    """A real argon2 hasher that notes how many pooled connections are out meanwhile."""

    def __init__(self, pool: Any) -> None:
        super().__init__(time_cost=2, memory_cost=19456, parallelism=1)
        self.pool = pool
        self.checked_out: list[int] = []

    def verify(self, hash: str | bytes, password: str | bytes) -> Literal[True]:
        self.checked_out.append(self.pool.checkedout())
        return super().verify(hash, password)


@BOTH_DATABASES
@pytest.mark.real_hashing
@pytest.mark.parametrize("name", ["alice", "nobody"])
async def test_authenticate_holds_no_connection_while_hashing(
    app: Quart, alice: None, name: str
) -> None:
    async with app.app_context():
        watcher = PoolWatchingHasher(db.store.engine.sync_engine.pool)
        hashing = passwords()
        hashing.hasher = watcher
        await credentials.check(
            auth_settings.of(app),
            hashing,
            username=name,
            password=PASSWORD,
            address=None,
            cookies={},
        )

    # A burst of logins waits here for the hashing bound; holding a connection each
    # would starve every other request of the pool.
    assert watcher.checked_out == [0]
