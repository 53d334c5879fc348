"""The objects alive once the app has started are frozen out of the collector's sight."""

from __future__ import annotations

import gc
from typing import Any

from quartapp import create_app


async def test_serving_freezes_what_startup_left_alive(settings: dict[str, Any]) -> None:
    settings["TESTING"] = False
    app = create_app(settings)
    gc.unfreeze()
    try:
        async with app.test_app():
            frozen = gc.get_freeze_count()
            # The app, its templates, SQLAlchemy's mappers: far more than a handful.
            assert frozen > 10_000
            response = await app.test_client().get("/")
            assert response.status_code == 200
    finally:
        gc.unfreeze()


async def test_a_testing_app_freezes_nothing(settings: dict[str, Any]) -> None:
    gc.unfreeze()
    async with create_app(settings).test_app():
        assert gc.get_freeze_count() == 0
