"""SQLite statements in one trip to aiosqlite's thread instead of four.

aiosqlite runs each SQLite connection in a thread of its own, and every call it makes
there is a trip: the event loop queues it, the thread runs it, and the awaiting task
resumes only when the loop comes round again. SQLAlchemy's aiosqlite adapter makes four
trips a statement (open a cursor, execute, fetch the rows, close the cursor), so a
sign-in made 69. On an idle server a trip costs microseconds; on a busy one each waits
for a whole turn of the loop, tens of milliseconds with fifty connections busy, and a
sign-in beside a saturated ``/hello`` took seconds while its hash was long done
(docs/performance.md, "Logins per second beside /hello").

:class:`OneTripCursor` does the four in one function run on the thread, and keeps what
SQLAlchemy reads afterwards (the rows, ``description``, ``rowcount``, ``lastrowid``).
:func:`use_one_trip` puts it on each new connection of an engine (a ``connect``
listener), so nothing outside this module changes.

Upstream: SQLAlchemy's adapter running a statement in one ``aiosqlite`` call (its
cursor's ``execute`` and ``fetchall`` as one function) would remove it.
"""

from __future__ import annotations

import collections
import sqlite3
from collections.abc import Sequence
from typing import Any

from sqlalchemy import event
from sqlalchemy.connectors.asyncio import AsyncAdapt_dbapi_connection
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
)
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.util import EMPTY_DICT

Outcome = tuple[list[Any] | None, Any, int, int | None]


def _execute(
    connection: sqlite3.Connection, operation: str, parameters: Sequence[Any] | None
) -> Outcome:
    """Run one statement on the connection's thread: its rows and what SQLAlchemy reads."""
    cursor = connection.cursor()
    try:
        if parameters is None:
            cursor.execute(operation)
        else:
            cursor.execute(operation, parameters)
        rows = cursor.fetchall() if cursor.description else None
        return rows, cursor.description, cursor.rowcount, cursor.lastrowid
    finally:
        cursor.close()


def _executemany(
    connection: sqlite3.Connection, operation: str, parameters: Sequence[Sequence[Any]]
) -> Outcome:
    cursor = connection.cursor()
    try:
        cursor.executemany(operation, parameters)
        return None, cursor.description, cursor.rowcount, cursor.lastrowid
    finally:
        cursor.close()


class OneTripCursor(AsyncAdapt_aiosqlite_cursor):
    """SQLAlchemy's aiosqlite cursor, with each statement one trip to the thread.

    No aiosqlite cursor is kept: one is opened and closed inside each trip, and the
    rows are held here, as the adapter already held them after its ``fetchall``.
    """

    __slots__ = ("_description", "_lastrowid", "_rowcount")

    def __init__(self, adapt_connection: AsyncAdapt_dbapi_connection) -> None:
        # Not the parent's __init__: that opens an aiosqlite cursor, a trip of its own.
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._cursor = None  # type: ignore[assignment]  # opened inside each trip
        self._soft_closed_memoized = EMPTY_DICT
        self._rows = collections.deque()
        self._description: Any = None
        self._rowcount = -1
        self._lastrowid: int | None = None

    @property
    def description(self) -> Any:
        return self._description

    @property
    def rowcount(self) -> int:
        return self._rowcount

    @property
    def lastrowid(self) -> int:
        return self._lastrowid  # type: ignore[return-value]  # None before any insert

    @property
    def arraysize(self) -> int:
        return 1  # sqlite3's default; fetchmany() reads the rows already here

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        pass

    def _keep(self, outcome: Outcome) -> None:
        rows, self._description, self._rowcount, self._lastrowid = outcome
        self._rows = collections.deque(rows or ())

    async def _execute_async(self, operation: Any, parameters: Any) -> Any:
        async with self._adapt_connection._execute_mutex:
            connection = self._connection
            outcome = await connection._execute(_execute, connection._conn, operation, parameters)
            self._keep(outcome)

    async def _executemany_async(self, operation: Any, seq_of_parameters: Any) -> Any:
        async with self._adapt_connection._execute_mutex:
            connection = self._connection
            self._keep(
                await connection._execute(
                    _executemany, connection._conn, operation, seq_of_parameters
                )
            )

    async def _async_soft_close(self) -> None:
        """Nothing to close: the trip closed its cursor, and the rows are kept here."""

    def close(self) -> None:
        self._rows.clear()


class OneTripConnection(AsyncAdapt_aiosqlite_connection):
    """SQLAlchemy's aiosqlite connection, handing out :class:`OneTripCursor`."""

    __slots__ = ()
    _cursor_cls = OneTripCursor

    def rollback(self) -> None:
        """Roll back, or do nothing, without a trip, when no transaction is open.

        SQLAlchemy's pool rolls back every connection it takes back, after a commit as
        well: 7 of a sign-in's 26 trips, each a no-op for SQLite. Whether a transaction
        is open is the connection's own flag, read here without a trip: nothing runs on
        the connection while it is being returned, and a connection whose statement was
        cancelled mid-trip is closed by SQLAlchemy, not returned.

        It was reverted twice for "database is locked" in a test under load; the cause
        was the test's own blocking read on the event loop's thread (now ``aquery``),
        which held the loop the mail sender needed to commit its claim.
        """
        raw = self._connection._connection
        try:
            idle = raw is not None and not raw.in_transaction
        except sqlite3.ProgrammingError:  # a Python that checks the thread: ask there
            idle = False
        if not idle:
            super().rollback()


def _one_trip(dbapi_connection: Any, _record: Any) -> None:
    if type(dbapi_connection) is AsyncAdapt_aiosqlite_connection:
        # The same object, with the cursor class swapped: a subclass with no fields of
        # its own, so nothing else about the connection changes.
        dbapi_connection.__class__ = OneTripConnection


def use_one_trip(engine: AsyncEngine) -> None:
    """Give every new connection of ``engine`` (aiosqlite) one trip a statement.

    Registered first, so that the other ``connect`` listeners (the pragmas) use it too.
    """
    event.listen(engine.sync_engine, "connect", _one_trip, insert=True)
