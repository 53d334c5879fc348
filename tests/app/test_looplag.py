"""``quartapp_event_loop_lag_seconds``: a stall of the event loop shows on ``/metrics``
(quartapp/metrics/looplag.py).

The histogram lives in the test process's one registry, so the test compares its
values before and after the stall it makes.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import TYPE_CHECKING

from prometheus_client.parser import text_string_to_metric_families

from quartapp import create_app
from quartapp.metrics import looplag
from tests.conftest import settings_at_head

if TYPE_CHECKING:
    from quart.typing import TestClientProtocol

TOKEN = "metrics-token-0123456789abcdefghijklmnopqrstuvwxyz"
NAME = "quartapp_event_loop_lag_seconds"


def watching() -> bool:
    """Whether a lag watcher runs on this loop."""
    return any(task.get_coro().__qualname__ == "watch" for task in asyncio.all_tasks())  # type: ignore[union-attr]


async def lag_samples(client: TestClientProtocol) -> dict[str, float]:
    """The lag histogram's count and its ``le="0.1"`` bucket, from one scrape."""
    response = await client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(await response.get_data(as_text=True)):
        for sample in family.samples:
            if sample.name == f"{NAME}_count":
                found["count"] = sample.value
            elif sample.name == f"{NAME}_bucket" and sample.labels.get("le") == "0.1":
                found["fast"] = sample.value
    return found


async def test_a_stalled_loop_shows_as_lag(tmp_path: Path, database: str) -> None:
    app = create_app(settings_at_head(tmp_path, database, METRICS_TOKEN=TOKEN))
    async with app.test_app():
        assert watching()
        client = app.test_client()
        await asyncio.sleep(looplag.INTERVAL * 3)  # the watcher has woken on time
        before = await lag_samples(client)

        time.sleep(0.3)  # noqa: ASYNC251 - the point: a synchronous call holds the loop
        await asyncio.sleep(looplag.INTERVAL * 3)
        after = await lag_samples(client)

    assert after["count"] > before["count"]
    # At least one wake-up came over 0.1 s late: the stall, seen.
    slow_before = before["count"] - before["fast"]
    slow_after = after["count"] - after["fast"]
    assert slow_after >= slow_before + 1


async def test_the_lag_is_not_watched_while_metrics_are_off(tmp_path: Path, database: str) -> None:
    app = create_app(settings_at_head(tmp_path, database))
    async with app.test_app():
        watched = watching()

    assert not watched
