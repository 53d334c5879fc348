"""GET /healthz: 200 and the schema's revision while the database answers, else 503."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from quart import Quart

from quartapp.db import db, schema
from quartapp.web.errors import RETRY_AFTER
from tests.conftest import BOTH_DATABASES, SQLITE_ONLY

if TYPE_CHECKING:
    # Only for annotations: a Test* class at module level would be collected by pytest.
    from quart.typing import TestClientProtocol


@BOTH_DATABASES
async def test_healthz_is_ok_when_database_answers(client: TestClientProtocol) -> None:
    response = await client.get("/healthz")

    assert response.status_code == 200
    assert await response.get_json() == {
        "status": "ok",
        "database": "up",
        "revision": schema.head(),
        "head": schema.head(),
    }


# A SQLite file can be taken away in-process; PostgreSQL is stopped for real in
# test_outage.py.
@SQLITE_ONLY
async def test_healthz_is_503_when_database_is_gone(
    app: Quart, client: TestClientProtocol, settings: dict[str, Any]
) -> None:
    database = Path(settings["DATABASE_URL"].removeprefix("sqlite:///"))
    async with app.app_context():
        await db.store.engine.dispose()
    # A directory where the database file was: SQLite cannot open it any more.
    for leftover in database.parent.glob(database.name + "*"):
        leftover.unlink()
    database.mkdir()

    response = await client.get("/healthz")

    assert response.status_code == 503
    assert response.headers["Retry-After"] == str(RETRY_AFTER)
    assert await response.get_json() == {"status": "unavailable", "database": "down"}
