"""Keeping the tables small: expired logins and stale throttle counters go.

``quart --app quartapp db prune`` (run by the Procfile's release step) deletes them all;
while serving, each process also prunes in small batches at most once a minute, so no
request ever pays for a clean-up and no single DELETE sweeps a whole table.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from quart import Quart, current_app
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import async_sessionmaker

from . import logins, throttle
from .db import db

log = logging.getLogger(__name__)
EXTENSION = "quartapp.prune"
INTERVAL = 60.0


@dataclass
class Pruned:
    """How many rows one pass deleted."""

    logins: int = 0
    counters: int = 0


async def prune_once(
    sessionmaker: async_sessionmaker[Any], config: Mapping[str, Any], *, batch: int
) -> Pruned:
    """One bounded batch of each table."""
    async with sessionmaker() as session:
        ended = await logins.prune(session, config, batch=batch)
        stale = await throttle.prune(session, batch=batch)
    return Pruned(ended, stale)


async def prune_all(sessionmaker: async_sessionmaker[Any], config: Mapping[str, Any]) -> Pruned:
    """Batches until nothing is left to prune (the CLI)."""
    total = Pruned()
    while True:
        done = await prune_once(sessionmaker, config, batch=logins.PRUNE_BATCH)
        total.logins += done.logins
        total.counters += done.counters
        if done.logins < logins.PRUNE_BATCH and done.counters < logins.PRUNE_BATCH:
            return total


async def _every_minute(app: Quart) -> None:
    # Workers started together spread their passes over the minute.
    await asyncio.sleep(random.uniform(INTERVAL / 2, INTERVAL))  # noqa: S311 - not secret
    while True:
        try:
            async with app.app_context():
                await prune_once(db.store.sessionmaker, app.config, batch=logins.PRUNE_BATCH)
        except (SQLAlchemyError, OSError, TimeoutError) as error:
            # The database is away; requests say so with 503s. Try again next minute.
            log.warning("pruning skipped: %s", str(error).splitlines()[0] if str(error) else error)
        await asyncio.sleep(INTERVAL)


async def _start() -> None:
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
    app.after_serving(_stop)
