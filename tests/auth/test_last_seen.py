"""``last_seen``: noted on the request path, written in background batches, and never a
reason for another process to empty its login cache (quartapp/auth/last_seen.py,
quartapp/auth/login_cache.py, revision 0012's counter on SQLite).

Statements are counted where SQLAlchemy sends them (``before_cursor_execute`` on the
app's engine); the login cache's own counters say whether a lookup was answered
from memory (a hit) or read the row (a miss).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from quart import Quart
from sqlalchemy import event

from quartapp import create_app
from quartapp.auth import last_seen, login_cache
from quartapp.db import db
from tests.conftest import (
    BOTH_DATABASES,
    AuthActions,
    add_user,
    aquery,
    cookie_value,
    replay,
)

# The tests marked BOTH_DATABASES are those whose outcome can depend on the database
# (the rule: tests/conftest.py): the statements sent, the batch's UPDATEs, and how
# another process hears of a write (NOTIFY on PostgreSQL, a counter on SQLite). When a
# shutdown flushes and what a noted login counts as are decided in Python: SQLite alone.


@contextmanager
def statements(app: Quart) -> Iterator[list[str]]:
    """Every statement ``app``'s engine sends while the block runs."""
    sent: list[str] = []

    def record(*args: Any) -> None:
        sent.append(args[2])

    engine = app.extensions["quartapp.db"].engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", record)


async def warm(app: Quart, client: Any, times: int = 3) -> login_cache.Cache:
    """Use the login until ``app`` caches it (once its cache may answer)."""
    deadline = time.monotonic() + 10
    async with app.app_context():
        cache = login_cache.cache()
        while cache.stamp() is None:
            assert time.monotonic() < deadline, "the login cache never became usable"
            await asyncio.sleep(0.01)
    for _ in range(times):
        assert (await client.get("/hello")).status_code == 200
    return cache


async def settled(settings: dict[str, Any]) -> None:
    """Give PostgreSQL's notifications, if any were sent, the time to arrive.

    On SQLite the next lookup reads the counter itself, so there is nothing to wait for.
    """
    if "postgresql" in settings["DATABASE_URL"]:
        await asyncio.sleep(0.3)


def later(monkeypatch: pytest.MonkeyPatch, seconds: float) -> float:
    """Move the clock on by ``seconds``; the new time."""
    now = time.time() + seconds
    monkeypatch.setattr(time, "time", lambda: now)
    return now


@BOTH_DATABASES
async def test_a_due_last_seen_costs_the_request_no_statement(
    app: Quart, auth: AuthActions, settings: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    await auth.login()
    await warm(app, auth.client)
    now = later(monkeypatch, 61)

    with statements(app) as sent:
        response = await auth.client.get("/hello")

    assert response.status_code == 200
    assert sent == []
    async with app.app_context():
        assert last_seen.pending().get(await login_id(settings)) == now
    # Nothing written yet: the batch does it.
    assert (await aquery(settings, "SELECT last_seen FROM logins"))[0][0] < now - 60


@BOTH_DATABASES
async def test_a_cold_lookup_with_last_seen_due_reads_the_row_and_writes_nothing(
    app: Quart, auth: AuthActions, settings: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    await auth.login()
    cookie = cookie_value(auth.client)
    now = later(monkeypatch, 61)
    other = create_app(settings)
    async with other.test_app():
        with statements(other) as sent:
            response = await replay(other, cookie).get("/hello")
        async with other.app_context():
            noted = last_seen.pending().get(await login_id(settings))

    assert response.status_code == 200
    assert len(sent) == 1, sent
    assert sent[0].lstrip().startswith("SELECT"), sent
    assert noted == now


@BOTH_DATABASES
async def test_a_batch_writes_every_pending_login_in_one_transaction(
    app: Quart, auth: AuthActions, settings: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    clients = [auth, AuthActions(app.test_client()), AuthActions(app.test_client())]
    for each in clients:
        await each.login()
    now = later(monkeypatch, 61)
    for each in clients:
        assert (await each.client.get("/hello")).status_code == 200
    # Two logins per UPDATE, to see a batch bigger than one statement stay one write.
    monkeypatch.setattr(last_seen, "BATCH", 2)

    async with app.app_context():
        seen = last_seen.pending()
        with statements(app) as sent:
            written = await seen.flush(db.store)
        left = len(seen)

    assert (written, left) == (3, 0)
    updates = [sql for sql in sent if sql.lstrip().startswith("UPDATE logins")]
    assert len(updates) == 2, sent
    assert await aquery(settings, f"SELECT count(*) FROM logins WHERE last_seen = {now}") == [(3,)]


@BOTH_DATABASES
async def test_the_batch_never_moves_last_seen_back(
    app: Quart, auth: AuthActions, settings: dict[str, Any]
) -> None:
    await auth.login()
    ((before,),) = await aquery(settings, "SELECT last_seen FROM logins")
    async with app.app_context():
        seen = last_seen.pending()
        seen.note(await login_id(settings), before - 100)
        await seen.flush(db.store)

    assert await aquery(settings, "SELECT last_seen FROM logins") == [(before,)]


async def test_a_clean_shutdown_writes_what_is_pending(
    settings: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    app = create_app(settings)
    async with app.test_app():
        await add_user(app)
        auth = AuthActions(app.test_client())
        await auth.login()
        now = later(monkeypatch, 61)
        assert (await auth.client.get("/hello")).status_code == 200
        async with app.app_context():
            assert len(last_seen.pending()) == 1

    assert await aquery(settings, "SELECT last_seen FROM logins") == [(now,)]


async def test_a_login_noted_but_not_yet_written_is_not_taken_for_idle(
    app: Quart, auth: AuthActions, settings: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    await auth.login()
    await warm(app, auth.client)
    # Used 61 s on (noted, not written), then 29 minutes later: the row says 30 minutes
    # idle, past the limit; what this process noted says 29.
    later(monkeypatch, 61)
    assert (await auth.client.get("/hello")).status_code == 200
    later(monkeypatch, 29 * 60)

    response = await auth.client.get("/hello")
    async with app.app_context():
        cache = login_cache.cache()
        cache.drop(None)  # what another process's cold cache would do: read the row
    cold = await auth.client.get("/hello")

    assert (response.status_code, cold.status_code) == (200, 200)
    assert await aquery(settings, "SELECT count(*) FROM logins") == [(1,)]


async def login_id(settings: dict[str, Any]) -> str:
    ((value,),) = await aquery(settings, "SELECT id FROM logins")
    return str(value)


# Other processes' caches


@BOTH_DATABASES
async def test_a_last_seen_write_leaves_another_process_cache_warm(
    app: Quart, auth: AuthActions, settings: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    await auth.login()
    cookie = cookie_value(auth.client)
    other = create_app(settings)
    async with other.test_app():
        holder = replay(other, cookie)
        cache = await warm(other, holder)
        # This process writes the login's last_seen in its batch, and writes columns
        # that say nothing about whether a login is live.
        async with app.app_context():
            seen = last_seen.pending()
            seen.note(await login_id(settings), time.time() + 1)
            assert await seen.flush(db.store) == 1
        await aquery(settings, "UPDATE logins SET user_agent = 'elsewhere', address = '192.0.2.1'")
        await settled(settings)
        hits, misses = cache.hits, cache.misses

        with statements(other) as sent:
            for _ in range(3):
                assert (await holder.get("/hello")).status_code == 200

    assert (cache.hits - hits, cache.misses - misses) == (3, 0)
    assert sent == []


@BOTH_DATABASES
async def test_an_update_that_can_end_a_login_still_empties_another_process_cache(
    app: Quart, auth: AuthActions, settings: dict[str, Any]
) -> None:
    await auth.login()
    cookie = cookie_value(auth.client)
    other = create_app(settings)
    async with other.test_app():
        holder = replay(other, cookie)
        cache = await warm(other, holder)
        await aquery(settings, "UPDATE logins SET expires_at = expires_at - 1")
        deadline = time.monotonic() + 5
        async with other.app_context():
            while cache.stamp() is not None and len(cache):
                assert time.monotonic() < deadline, "the change was never heard of"
                await asyncio.sleep(0.005)
        misses = cache.misses

        assert (await holder.get("/hello")).status_code == 200

    assert cache.misses == misses + 1
