"""Tests for the per-login record: what it stores, and that ending it ends the login."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from quart import Quart
from quart.testing import QuartClient, QuartCliRunner

from quartapp import accounts, logins, prune
from quartapp.db import db
from tests.conftest import AuthActions, add_user, invoke, login_count, query

# Logins


@pytest.mark.usefixtures("app")
async def test_logout_deletes_the_login_row(auth: AuthActions, settings: dict[str, Any]) -> None:
    await auth.login()
    assert login_count(settings) == 1

    await auth.logout()

    assert login_count(settings) == 0


async def test_login_row_keeps_only_a_digest_of_the_cookie_token(
    auth: AuthActions, client: QuartClient, settings: dict[str, Any]
) -> None:
    await auth.login()
    async with client.session_transaction() as session:
        token = session["login"]

    assert query(settings, "SELECT id FROM logins") == [
        (hashlib.sha256(token.encode()).hexdigest(),)
    ]


# Pruning


def age_all_logins(settings: dict[str, Any], seconds: int) -> None:
    query(
        settings,
        f"UPDATE logins SET expires_at = expires_at - {seconds}, "
        f"last_seen = last_seen - {seconds}",
    )


async def test_db_prune_deletes_abandoned_logins_and_keeps_live_ones(
    app: Quart, auth: AuthActions, settings: dict[str, Any], runner: QuartCliRunner
) -> None:
    await auth.login()  # abandoned: its browser never comes back
    age_all_logins(settings, 31 * 60)  # past the 30-minute idle limit
    await AuthActions(app.test_client()).login(remember=True)  # another browser's stays

    result = await invoke(runner, "db", "prune")

    assert result.exit_code == 0, result.output
    assert "pruned 1 expired login(s)" in result.output
    assert query(settings, "SELECT remember FROM logins") == [(True,)]


async def test_pruning_works_in_bounded_batches(app: Quart, settings: dict[str, Any]) -> None:
    await add_user(app)
    for _ in range(5):
        await start_login(app)
    age_all_logins(settings, 13 * 3600)  # past the 12-hour absolute limit

    async with app.app_context():
        first = await prune.prune_once(db.store.sessionmaker, app.config, batch=3)
        second = await prune.prune_once(db.store.sessionmaker, app.config, batch=3)

    assert (first.logins, second.logins) == (3, 2)
    assert login_count(settings) == 0


async def test_stale_throttle_counters_are_pruned(
    auth: AuthActions, settings: dict[str, Any], runner: QuartCliRunner
) -> None:
    await auth.login(password="a wrong password, long enough")
    assert query(settings, "SELECT count(*) FROM throttle_counters") == [(2,)]
    query(settings, "UPDATE throttle_counters SET window_end = window_end - 2 * 86400")

    result = await invoke(runner, "db", "prune")

    assert "and 2 throttle counter(s)" in result.output
    assert query(settings, "SELECT count(*) FROM throttle_counters") == [(0,)]


async def start_login(app: Quart) -> None:
    async with app.app_context(), db.session() as session:
        user = await accounts.get_user(session, "alice")
        await logins.start(
            session, app.config, user.id, remember=False, address=None, user_agent=None
        )
        await session.commit()
