"""Keeping the tables small: expired logins, stale throttle counters, and whatever
features register with auth's ``pruners`` (passkey challenges) go.

``quart --app quartapp db prune`` (run by the Procfile's release step) deletes them all;
while serving, each process also prunes once a minute, in small batches repeated until
it has caught up (at most ``PASS_BATCHES`` a pass, with a pause between them), so no
request ever pays for a clean-up, no single DELETE sweeps a whole table, and pruning
keeps up with the most rows a flood can write (docs/security.md, "Throttling").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Mapping
from typing import Any

from quart import Quart, current_app
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import async_sessionmaker

from ..db import db
from . import logins, settings, throttle
from .registry import registry
from .settings import AuthSettings

log = logging.getLogger("quartapp.prune")  # the pre-move name, kept for log filters
EXTENSION = "quartapp.prune"
INTERVAL = 60.0
# Batches one background pass may run: 100 x 500 = 50,000 rows of each table a minute
# per process. A login writes at most 4 counters (an IPv6 /48, /56, /64 and a name),
# and only once admitted to hashing: at most 4 x 2 slots / 25 ms = 320 rows/s, 19,200
# a minute, per process at the cheapest argon2 (docs/security.md, "Throttling").
PASS_BATCHES = 100
# Between two batches, so requests waiting on the database (SQLite's one writer) go
# first.
PAUSE = 0.02


class Pruned(dict[str, int]):
    """How many rows one pass deleted, by pruner: ``logins``, ``counters``, and each
    feature's (``challenges``)."""

    def add(self, other: Mapping[str, int]) -> None:
        """Add another batch's counts to these."""
        for name, count in other.items():
            self[name] = self.get(name, 0) + count


async def prune_once(
    sessionmaker: async_sessionmaker[Any], config: AuthSettings, *, batch: int
) -> Pruned:
    """One bounded batch of each table: auth's own, then every registered pruner."""
    pruned = Pruned()
    async with sessionmaker() as session:
        pruned["logins"] = await logins.prune(session, config, batch=batch)
        pruned["counters"] = await throttle.prune(session, config, batch=batch)
        for name, pruner in registry().pruners.items():
            pruned[name] = await pruner(session, config, batch)
    return pruned


async def prune_pass(
    sessionmaker: async_sessionmaker[Any],
    config: AuthSettings,
    *,
    batch: int = logins.PRUNE_BATCH,
    batches: int | None = PASS_BATCHES,
) -> Pruned:
    """Batches until nothing is left to prune, or ``batches`` of them (None: no bound)."""
    total = Pruned()
    done = 0
    while True:
        pruned = await prune_once(sessionmaker, config, batch=batch)
        total.add(pruned)
        done += 1
        caught_up = max(pruned.values()) < batch
        if caught_up or (batches is not None and done >= batches):
            return total
        await asyncio.sleep(PAUSE)


async def prune_all(sessionmaker: async_sessionmaker[Any], config: AuthSettings) -> Pruned:
    """Batches until nothing is left to prune (the CLI)."""
    return await prune_pass(sessionmaker, config, batches=None)


async def _every_minute(app: Quart) -> None:
    # Workers started together spread their passes over the minute.
    await asyncio.sleep(random.uniform(INTERVAL / 2, INTERVAL))  # noqa: S311 - not secret
    while True:
        try:
            async with app.app_context():
                await prune_pass(db.store.sessionmaker, settings.of(app))
        except (SQLAlchemyError, OSError, TimeoutError) as error:
            # The database is away; requests say so with 503s. Try again next minute.
            log.warning("pruning skipped: %s", str(error).splitlines()[0] if str(error) else error)
        await asyncio.sleep(INTERVAL)


async def _start() -> None:
    # LocalProxy's method, hidden by current_app's Quart type.
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    app.extensions[EXTENSION] = asyncio.create_task(_every_minute(app))


async def _stop() -> None:
    task = current_app.extensions.pop(EXTENSION, None)
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def init_app(app: Quart) -> None:
    """Prune in the background while the app serves."""
    app.before_serving(_start)
    # The first after_serving hook (they run in the order added; the database's closes
    # the engine): a pass in progress is cancelled while the engine can still close
    # its connection, instead of leaving it to the garbage collector.
    app.after_serving_funcs.insert(0, _stop)
