"""``last_seen``, written in batches in the background instead of on the request path.

A logged-in request whose login was last seen a minute ago or more
(:data:`.logins.SEEN_RESOLUTION`) only notes the time here, in memory; every
:data:`INTERVAL` seconds one transaction writes all that this process has noted: one
``UPDATE`` run with each login's parameters (an executemany, :data:`BATCH` logins at a
time). So a request never waits on a write, and the writes a process
makes per second stay bounded whatever the number of users. Stopping the app writes
what is left (``while_serving``, before the database closes), so a clean shutdown
loses none; a crash loses at most one interval, which only makes a login look idle a
few seconds longer than it was.

The write only moves ``last_seen`` forward, and the caches are told of nothing by it:
on PostgreSQL revision 0004's trigger stays silent, and the listener knows the
statement by :data:`OPTION`; on SQLite revision 0012's counter does not move.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator
from typing import Any, cast

from quart import Quart, current_app
from sqlalchemy import bindparam, update
from sqlalchemy.exc import SQLAlchemyError

from ..db import Store, db
from .models import Login

log = logging.getLogger("quartapp.last_seen")
EXTENSION = "quartapp.last_seen"
# Seconds between two writes. A login looks idle at most this much longer than it is
# (on top of the minute's resolution); the idle limits are in minutes.
INTERVAL = 5.0
# Logins per executemany, so a flush after a long outage yields between slices.
BATCH = 500
# The execution option that marks the write, for the PostgreSQL listener.
OPTION = "quartapp_last_seen"


# One statement, compiled once and run with every noted login's parameters
# (executemany): a statement built per batch (a CASE of each id) was compiled anew on
# the event loop at every flush, tens of milliseconds for a few hundred logins. It
# only moves last_seen forward, so it never makes a login look idle.
STATEMENT = (
    update(Login)
    .where(Login.id == bindparam("login_id"), Login.last_seen < bindparam("seen"))
    .values(last_seen=bindparam("seen"))
    .execution_options(**{OPTION: True})
)


class Pending:
    """The ``last_seen`` times this process has noted and not yet written."""

    def __init__(self) -> None:
        self._seen: dict[str, float] = {}
        # Rows written and flushes made since start (tests and diagnostics read them).
        self.written = 0
        self.flushes = 0

    def note(self, login_id: str, when: float) -> None:
        """The login was used at ``when``: write it with the next batch."""
        if when > self._seen.get(login_id, 0.0):
            self._seen[login_id] = when

    def get(self, login_id: str) -> float | None:
        """The time noted for the login and not written yet, if any."""
        return self._seen.get(login_id)

    def __len__(self) -> int:
        return len(self._seen)

    async def flush(self, store: Store) -> int:
        """Write everything noted, in one transaction; how many logins it named.

        What fails to be written is noted again for the next flush.
        """
        if not self._seen:
            return 0
        seen, self._seen = self._seen, {}
        items = list(seen.items())
        try:
            async with store.engine.begin() as connection:
                for start in range(0, len(items), BATCH):
                    batch = items[start : start + BATCH]
                    await connection.execute(
                        STATEMENT, [{"login_id": key, "seen": when} for key, when in batch]
                    )
        except BaseException:
            for login_id, when in seen.items():
                self.note(login_id, when)
            raise
        self.written += len(items)
        self.flushes += 1
        return len(items)


async def _write_every_interval(app: Quart, pending: Pending) -> None:
    while True:
        await asyncio.sleep(INTERVAL)
        try:
            async with app.app_context():
                await pending.flush(db.store)
        except (SQLAlchemyError, OSError, TimeoutError) as error:
            # The database is away: keep what was noted and try again next interval.
            log.warning(
                "last_seen not written: %s", str(error).splitlines()[0] if str(error) else error
            )


async def _serving() -> AsyncGenerator[None, None]:
    """Write in the background while serving; write what is left before the database closes."""
    # LocalProxy's method, hidden by current_app's Quart type.
    app: Any = current_app._get_current_object()  # type: ignore[attr-defined]
    pending = pending_of(app)
    task = asyncio.create_task(_write_every_interval(app, pending))
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    try:
        await pending.flush(db.store)
    except (SQLAlchemyError, OSError, TimeoutError) as error:
        log.warning("last_seen of %d logins lost at shutdown: %s", len(pending), error)


def pending_of(app: Quart) -> Pending:
    """The app's pending ``last_seen`` times (made on first use)."""
    return cast(Pending, app.extensions.setdefault(EXTENSION, Pending()))


def pending() -> Pending:
    """The current app's pending ``last_seen`` times."""
    return cast(Pending, current_app.extensions[EXTENSION])


def init_app(app: Quart) -> None:
    """Write noted ``last_seen`` times in the background while the app serves."""
    pending_of(app)
    app.while_serving(_serving)
