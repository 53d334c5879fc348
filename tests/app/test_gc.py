"""The objects alive once the app has started are frozen out of the collector's sight."""

from __future__ import annotations

import gc
from typing import Any

from quartapp import FULL_COLLECTION_AFTER, create_app


async def test_serving_freezes_what_startup_left_alive(settings: dict[str, Any]) -> None:
    settings["TESTING"] = False
    app = create_app(settings)
    gc.unfreeze()
    threshold = gc.get_threshold()
    try:
        async with app.test_app():
            frozen = gc.get_freeze_count()
            # The app, its templates, SQLAlchemy's mappers: far more than a handful.
            assert frozen > 10_000
            # And full collections made rarer, the young ones left alone.
            assert gc.get_threshold() == (threshold[0], threshold[1], FULL_COLLECTION_AFTER)
            response = await app.test_client().get("/")
            assert response.status_code == 200
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)


async def test_a_testing_app_freezes_nothing(settings: dict[str, Any]) -> None:
    gc.unfreeze()
    threshold = gc.get_threshold()
    async with create_app(settings).test_app():
        assert gc.get_freeze_count() == 0
        assert gc.get_threshold() == threshold
