"""How late the event loop runs what is due: ``quartapp_event_loop_lag_seconds``.

A task sleeps :data:`INTERVAL` seconds over and over, and each time it wakes it
observes how much later than asked it did. Every request of the process waits behind
whatever held the loop meanwhile (a long synchronous call, a garbage collection, a
blocking write), so this histogram is the tail every page shares; a spike in it with no
request slower than usual points at background work. Started only while metrics are
on; each worker observes its own loop (summed over the workers in multiprocess mode).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator

from prometheus_client import Histogram
from quart import Quart

# Twenty wake-ups a second: each costs a few microseconds, and a stall as short as a
# request's p50 still shows.
INTERVAL = 0.05
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
# Registered by the metrics package on its own registry (quartapp/metrics/definitions.py).
LOOP_LAG = Histogram(
    "quartapp_event_loop_lag_seconds",
    "How much later than due this worker's event loop woke a timer: what every request "
    "waited behind.",
    buckets=BUCKETS,
    registry=None,
)


async def watch(interval: float = INTERVAL) -> None:
    """Observe the loop's lag every ``interval`` seconds, until cancelled."""
    loop = asyncio.get_running_loop()
    while True:
        due = loop.time() + interval
        await asyncio.sleep(interval)
        LOOP_LAG.observe(max(0.0, loop.time() - due))


async def _serving() -> AsyncGenerator[None, None]:
    task = asyncio.create_task(watch())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def init_app(app: Quart) -> None:
    """Watch the loop while ``app`` serves."""
    app.while_serving(_serving)
