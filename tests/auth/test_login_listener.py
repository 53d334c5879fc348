"""The login cache on PostgreSQL: what revision 0004's triggers send, and what the app
does with it (quartapp/auth/login_listener.py, quartapp/auth/login_cache.py).

Notifications are read by a LISTEN of the test's own. To show that something was
*not* sent, a probe notification is committed afterwards: notifications arrive in
commit order, so whatever came before the probe is all there was.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from quart import Quart
from sqlalchemy import event
from sqlalchemy.engine import make_url

from quartapp import create_app, load_config
from quartapp.auth import login_cache
from quartapp.auth.login_listener import CHANNEL, notifications_for
from quartapp.db import schema
from quartapp.settings import ConfigError, Settings
from tests.auth.test_round_trips import LOGIN_LOOKUP
from tests.conftest import (
    POSTGRES_ONLY,
    AuthActions,
    add_user,
    aquery,
    cookie_value,
    csrf_token,
    make_settings,
    query,
    replay,
)
from tests.support.pg import PostgresServer

# The outcomes here can depend on the database (the rule: tests/conftest.py).
pytestmark = pytest.mark.both_databases

PROBE = "probe"
TRIGGERS_SQL = "SELECT tgname FROM pg_trigger WHERE tgname LIKE 'quartapp_logins_%' ORDER BY 1"


class Notifications:
    """A LISTEN on the login channel, for reading what a change sent."""

    def __init__(self, settings: dict[str, Any]) -> None:
        self.settings = settings
        self.received: asyncio.Queue[str] = asyncio.Queue()

    def _notified(self, _connection: Any, _pid: int, _channel: str, payload: object) -> None:
        self.received.put_nowait(str(payload))  # asyncpg hands it over as a str

    async def sent_so_far(self) -> list[str]:
        """Every payload committed before now, in order."""
        await asyncio.to_thread(query, self.settings, f"SELECT pg_notify('{CHANNEL}', '{PROBE}')")
        payloads = []
        while (payload := await asyncio.wait_for(self.received.get(), 10)) != PROBE:
            payloads.append(payload)
        return payloads


@asynccontextmanager
async def listening(settings: dict[str, Any]) -> AsyncIterator[Notifications]:
    notifications = Notifications(settings)
    connection = await asyncpg.connect(settings["DATABASE_URL"])
    try:
        await connection.add_listener(CHANNEL, notifications._notified)
        yield notifications
    finally:
        await connection.close()


async def add_logins(settings: dict[str, Any], count: int, prefix: str = "login-") -> list[str]:
    """``count`` live logins of user 1 (made if needed), straight into the table."""
    await aquery(
        settings,
        "INSERT INTO users (id, username, password_hash, created_at) "
        "VALUES (1, 'alice', 'x', now()) ON CONFLICT DO NOTHING",
    )
    await aquery(
        settings,
        "INSERT INTO logins (id, user_id, remember, created_at, expires_at, last_seen) "
        f"SELECT '{prefix}' || g, 1, false, now(), 4e9, 2e9 FROM generate_series(1, {count}) g",
    )
    return [f"{prefix}{n}" for n in range(1, count + 1)]


def ids(payloads: list[str]) -> list[str]:
    return sorted(login_id for payload in payloads for login_id in payload.split(","))


# What the triggers send


@POSTGRES_ONLY
async def test_ended_logins_are_notified_by_id_at_commit_only(settings: dict[str, Any]) -> None:
    await add_logins(settings, 3)
    async with listening(settings) as notifications:
        writer = await asyncpg.connect(settings["DATABASE_URL"])
        try:
            transaction = writer.transaction()
            await transaction.start()
            await writer.execute("DELETE FROM logins WHERE id IN ('login-1', 'login-2')")
            before_commit = await notifications.sent_so_far()
            await transaction.commit()
        finally:
            await writer.close()
        after_commit = await notifications.sent_so_far()

    assert before_commit == []
    assert ids(after_commit) == ["login-1", "login-2"]


@POSTGRES_ONLY
async def test_a_rolled_back_delete_notifies_nothing(settings: dict[str, Any]) -> None:
    await add_logins(settings, 1)
    async with listening(settings) as notifications:
        writer = await asyncpg.connect(settings["DATABASE_URL"])
        try:
            transaction = writer.transaction()
            await transaction.start()
            await writer.execute("DELETE FROM logins")
            await transaction.rollback()
        finally:
            await writer.close()

        assert await notifications.sent_so_far() == []


@POSTGRES_ONLY
async def test_deleting_a_user_notifies_its_logins(settings: dict[str, Any]) -> None:
    await add_logins(settings, 2)
    async with listening(settings) as notifications:
        await aquery(settings, "DELETE FROM users WHERE id = 1")  # ON DELETE CASCADE

        assert ids(await notifications.sent_so_far()) == ["login-1", "login-2"]


@POSTGRES_ONLY
async def test_the_last_seen_write_notifies_nothing_but_other_updates_do(
    settings: dict[str, Any],
) -> None:
    await add_logins(settings, 4)
    async with listening(settings) as notifications:
        # The app's once-a-minute write: last_seen moves forward. No cache need drop it.
        await aquery(settings, "UPDATE logins SET last_seen = last_seen + 60 WHERE id = 'login-1'")
        touched = await notifications.sent_so_far()
        await aquery(
            settings, "UPDATE logins SET last_seen = last_seen - 3600 WHERE id = 'login-2'"
        )
        await aquery(settings, "UPDATE logins SET expires_at = 1 WHERE id = 'login-3'")
        await aquery(settings, "UPDATE logins SET remember = true WHERE id = 'login-4'")
        changed = await notifications.sent_so_far()

    assert touched == []
    assert changed == ["login-2", "login-3", "login-4"]


@POSTGRES_ONLY
async def test_many_ended_logins_go_100_to_a_notification_and_past_1000_as_all(
    settings: dict[str, Any],
) -> None:
    some = await add_logins(settings, 250, "some-")
    async with listening(settings) as notifications:
        await aquery(settings, "DELETE FROM logins")
        chunked = await notifications.sent_so_far()
        await add_logins(settings, 1001, "many-")
        await aquery(settings, "DELETE FROM logins")
        too_many = await notifications.sent_so_far()
        await add_logins(settings, 1)
        await aquery(settings, "TRUNCATE logins")
        truncated = await notifications.sent_so_far()

    assert [len(payload.split(",")) for payload in chunked] == [100, 100, 50]
    assert max(len(payload.encode()) for payload in chunked) < 8000
    assert ids(chunked) == sorted(some)
    assert too_many == ["*"]
    assert truncated == ["*"]


# On PostgreSQL alone (the triggers are PostgreSQL's): marked so that a run of SQLite
# tests (`make test-quick`) starts no PostgreSQL for it.
@pytest.mark.postgres
async def test_revision_0004_is_undone_by_its_downgrade(
    postgres_server: PostgresServer | None, tmp_path: Path
) -> None:
    if postgres_server is None:
        pytest.skip("PostgreSQL is not installed")
    name = postgres_server.new_database_name()
    postgres_server.psql(f"CREATE DATABASE {name}")
    config = Settings.from_config(
        load_config(make_settings(tmp_path, DATABASE_URL=postgres_server.url(name)))
    )
    try:
        await schema.upgrade(config, "0004")
        added = postgres_server.psql(TRIGGERS_SQL, name).split()
        await schema.downgrade(config, "0002")
        left = postgres_server.psql(TRIGGERS_SQL, name).split()
        functions = postgres_server.psql(
            "SELECT count(*) FROM pg_proc WHERE proname LIKE 'quartapp_%'", name
        )
    finally:
        postgres_server.psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    assert added == [
        "quartapp_logins_deleted",
        "quartapp_logins_truncated",
        "quartapp_logins_updated",
    ]
    assert left == []
    assert functions.strip() == "0"


# What the app does


@contextmanager
def login_lookups(app: Quart) -> Iterator[list[str]]:
    """The login lookups the app sends to its database while the block runs."""
    sent: list[str] = []

    def record(*args: Any) -> None:
        statement = args[2]
        if LOGIN_LOOKUP in statement:
            sent.append(statement)

    engine = app.extensions["quartapp.db"].engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", record)


async def cache_ready(app: Quart) -> None:
    """Until the app's cache may answer (at once on SQLite; once listening on PostgreSQL)."""
    deadline = time.monotonic() + 10
    async with app.app_context():
        while login_cache.cache().stamp() is None:
            assert time.monotonic() < deadline, "the login cache never became usable"
            await asyncio.sleep(0.01)


async def test_gets_are_answered_from_the_cache_and_a_post_reads_the_row(
    app: Quart, auth: AuthActions
) -> None:
    await auth.login()
    await cache_ready(app)
    assert (await auth.client.get("/hello")).status_code == 200  # read and kept
    token = await csrf_token(auth.client, "/logout")

    with login_lookups(app) as gets:
        for _ in range(3):
            assert (await auth.client.get("/hello")).status_code == 200
    with login_lookups(app) as post:
        response = await auth.client.post("/logout", form={"csrf_token": token})

    assert gets == []
    assert response.status_code == 302
    assert len(post) == 1


@POSTGRES_ONLY
async def test_behind_pgbouncer_every_get_reads_the_row(settings: dict[str, Any]) -> None:
    app = create_app({**settings, "DATABASE_PGBOUNCER": True})
    async with app.test_app():
        await add_user(app)
        auth = AuthActions(app.test_client())
        await auth.login()
        with login_lookups(app) as sent:
            for _ in range(3):
                assert (await auth.client.get("/hello")).status_code == 200
        async with app.app_context():
            trusted = login_cache.cache().trusted

    assert len(sent) == 3
    assert not trusted


@POSTGRES_ONLY
async def test_behind_pgbouncer_a_direct_listen_url_turns_the_cache_on(
    settings: dict[str, Any],
) -> None:
    direct = settings["DATABASE_URL"]
    app = create_app({**settings, "DATABASE_PGBOUNCER": True, "DATABASE_LISTEN_URL": direct})
    async with app.test_app():
        await add_user(app)
        auth = AuthActions(app.test_client())
        await auth.login()
        await cache_ready(app)
        with login_lookups(app) as sent:
            for _ in range(3):
                assert (await auth.client.get("/hello")).status_code == 200
        await aquery(settings, "DELETE FROM logins")
        # The notification may still be on its way: wait for it, not for a time.
        async with app.app_context():
            deadline = time.monotonic() + 10
            while len(login_cache.cache()):
                assert time.monotonic() < deadline, "the deletion was never heard"
                await asyncio.sleep(0.01)
        after = await auth.client.get("/hello")

    assert len(sent) == 1
    assert after.status_code == 302


@POSTGRES_ONLY
async def test_a_lost_listener_empties_the_cache_and_a_new_one_restores_it(
    app: Quart, auth: AuthActions, settings: dict[str, Any]
) -> None:
    await auth.login()
    await cache_ready(app)
    assert (await auth.client.get("/hello")).status_code == 200
    await aquery(
        settings,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE application_name = 'quartapp-listener'",
    )

    # The loss empties the cache: the next GET reads the row, whether or not a new
    # listening connection is up by then. Once one is, GETs are cached again.
    async with app.app_context():
        cache = login_cache.cache()
        deadline = time.monotonic() + 10
        while len(cache):
            assert time.monotonic() < deadline, "the lost listener was never noticed"
            await asyncio.sleep(0.01)
    with login_lookups(app) as after_loss:
        assert (await auth.client.get("/hello")).status_code == 200
    await cache_ready(app)
    with login_lookups(app) as once_back:
        for _ in range(3):
            assert (await auth.client.get("/hello")).status_code == 200

    assert len(after_loss) == 1
    assert len(once_back) == 1


@asynccontextmanager
async def slow_path_to(url: str, delay: float) -> AsyncIterator[str]:
    """A TCP proxy to ``url``'s server that holds every chunk ``delay`` seconds, in order."""
    target = make_url(url)
    handlers: set[asyncio.Task[None]] = set()

    async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        while data := await source.read(65536):
            await asyncio.sleep(delay)
            sink.write(data)
            await sink.drain()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        handlers.add(task)
        upstream: asyncio.StreamWriter | None = None
        try:
            upstream_reader, upstream = await asyncio.open_connection(target.host, target.port)
            await asyncio.gather(pipe(reader, upstream), pipe(upstream_reader, writer))
        except OSError:
            pass
        finally:
            for stream in (writer, upstream):
                if stream is not None:
                    stream.close()
                    with contextlib.suppress(OSError):
                        await stream.wait_closed()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield target.set(port=port).render_as_string(hide_password=False)
    finally:
        server.close()
        for task in handlers:
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
        await server.wait_closed()


@POSTGRES_ONLY
async def test_a_login_this_process_ends_is_refused_before_its_news_comes_back(
    settings: dict[str, Any],
) -> None:
    # The listener hears through a path 0.2 s slow each way, so the notification of
    # the logout comes back long after the logout has answered.
    async with slow_path_to(settings["DATABASE_URL"], 0.2) as slow:
        app = create_app({**settings, "DATABASE_LISTEN_URL": slow})
        async with app.test_app():
            await add_user(app)
            auth = AuthActions(app.test_client())
            await auth.login()
            await cache_ready(app)
            stolen = cookie_value(auth.client)
            assert (await replay(app, stolen).get("/hello")).status_code == 200  # cached

            await auth.logout()
            refused = await replay(app, stolen).get("/hello")

    assert refused.status_code == 302


def test_a_change_of_this_process_holds_the_cache_until_all_its_news_is_heard(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cache = login_cache.Cache()
    cache.trust(True)
    cache.expect(sender=7, notifications=notifications_for(250))  # ids 100 at a time
    held = [cache.stamp()]
    for _ in range(3):
        cache.heard(7)
        held.append(cache.stamp())
    cache.expect(sender=8)  # rolled back: no news will come
    now = time.monotonic()
    waiting = cache.stamp()
    monkeypatch.setattr(time, "monotonic", lambda: now + cache.EXPECT_TIMEOUT + 0.1)

    assert held[:3] == [None, None, None]
    assert held[3] is not None
    assert waiting is None
    assert cache.stamp() is not None


# The setting


@pytest.mark.parametrize("value", ["sqlite:///x.db", "not a url", 5, "mysql://u@h/db"], ids=repr)
def test_a_listen_url_that_is_not_postgresql_is_refused(tmp_path: Path, value: Any) -> None:
    with pytest.raises(ConfigError, match="DATABASE_LISTEN_URL"):
        load_config(make_settings(tmp_path, DATABASE_LISTEN_URL=value))
