"""SQLite statements in one trip to aiosqlite's thread (quartapp.db.onetrip).

Each statement must give SQLAlchemy what four trips gave it: rows, ``rowcount``,
``lastrowid``, RETURNING, errors as SQLAlchemy's own, and nothing that outlives it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite.core
import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection

from quartapp.db import Store, connect
from quartapp.db.onetrip import OneTripConnection
from tests.support.settings import site

T = TypeVar("T")


async def write(store: Store, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
    """Run ``work`` in one transaction, committed if it returns."""
    async with store.engine.begin() as connection:
        return await work(connection)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    """A store on a fresh SQLite file, with a table of its own."""
    async with connect(site(DATABASE_URL=f"sqlite:///{tmp_path / 'trip.db'}")) as opened:

        async def create(connection: AsyncConnection) -> None:
            await connection.execute(
                text("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL)")
            )

        await write(opened, create)
        yield opened


@pytest.fixture
def trips(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Count the calls queued to aiosqlite's threads, by function name."""
    counted: Counter[str] = Counter()
    queue: Callable[..., Awaitable[Any]] = aiosqlite.core.Connection._execute

    async def counting(
        self: aiosqlite.core.Connection, fn: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> Any:
        counted[getattr(fn, "__name__", "?")] += 1
        return await queue(self, fn, *args, **kwargs)

    monkeypatch.setattr(aiosqlite.core.Connection, "_execute", counting)
    return counted


async def test_a_select_is_one_trip_with_all_its_rows(store: Store, trips: Counter[str]) -> None:
    async def fill(connection: AsyncConnection) -> None:
        for name in ("a", "b", "c"):
            await connection.execute(text("INSERT INTO t (name) VALUES (:n)"), {"n": name})

    await write(store, fill)
    trips.clear()

    async def read(connection: AsyncConnection) -> list[str]:
        result = await connection.execute(text("SELECT name FROM t ORDER BY name"))
        return [name for (name,) in result.all()]

    assert await store.read(read) == ["a", "b", "c"]
    assert trips["_execute"] == 1  # not cursor, execute, fetchall and close


async def test_rowcount_lastrowid_and_returning_are_what_sqlite_says(store: Store) -> None:
    async def change(connection: AsyncConnection) -> tuple[int | None, int, list[int]]:
        inserted = await connection.execute(text("INSERT INTO t (name) VALUES ('x')"))
        await connection.execute(text("INSERT INTO t (name) VALUES ('y')"))
        updated = await connection.execute(text("UPDATE t SET name = name || '!'"))
        returned = await connection.execute(text("DELETE FROM t WHERE name = 'y!' RETURNING id"))
        return inserted.lastrowid, updated.rowcount, [row[0] for row in returned]

    assert await write(store, change) == (1, 2, [2])


async def test_many_rows_at_once_and_errors_as_sqlalchemy_raises_them(store: Store) -> None:
    async def many(connection: AsyncConnection) -> int:
        result = await connection.execute(
            text("INSERT INTO t (name) VALUES (:n)"), [{"n": "p"}, {"n": "q"}]
        )
        return result.rowcount

    assert await write(store, many) == 2

    async def duplicate(connection: AsyncConnection) -> None:
        await connection.execute(text("INSERT INTO t (name) VALUES ('p')"))

    with pytest.raises(IntegrityError):
        await write(store, duplicate)

    async def broken(connection: AsyncConnection) -> None:
        await connection.execute(text("SELECT nothing FROM nowhere"))

    with pytest.raises(OperationalError):
        await store.read(broken)

    async def count(connection: AsyncConnection) -> int:
        return int((await connection.execute(text("SELECT count(*) FROM t"))).scalar_one())

    assert await store.read(count) == 2  # the failed insert left nothing behind


async def test_every_connection_of_the_store_makes_one_trip_a_statement(store: Store) -> None:
    async def driver(connection: AsyncConnection) -> type:
        raw = await connection.get_raw_connection()
        return type(raw.dbapi_connection)

    assert await store.read(driver) is OneTripConnection


async def test_a_connection_returned_with_no_transaction_open_makes_no_rollback_trip(
    store: Store, trips: Counter[str]
) -> None:
    async def count(connection: AsyncConnection) -> int:
        return int((await connection.execute(text("SELECT count(*) FROM t"))).scalar_one())

    async with store.engine.connect() as connection:
        await connection.execute(text("INSERT INTO t (name) VALUES ('kept')"))
        await connection.commit()
        trips.clear()
    # The pool's reset on return: SQLite has nothing open to undo.
    assert trips["rollback"] == 0

    async with store.engine.connect() as connection:
        await connection.execute(text("INSERT INTO t (name) VALUES ('undone')"))
        trips.clear()
    # Returned with its transaction open: rolled back on the thread, as before.
    assert trips["rollback"] == 1
    assert await store.read(count) == 1
