"""The reset request answers alike for known and unknown addresses: the same
statements (counted, exactly), and, loosely, the same time (medians, a ratio bound)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from quart import Quart
from sqlalchemy import event

from quartapp import create_app
from tests.conftest import TIMING, AuthActions, csrf_token

from .helpers import SENT_PAGE, add_address

if TYPE_CHECKING:
    from quart.typing import TestClientProtocol

REQUEST = "/reset_password_request"


@contextmanager
def statements(app: Quart) -> Iterator[list[str]]:
    """The SQL statements the app's engine runs meanwhile, by their first word."""
    seen: list[str] = []

    def note(_conn: Any, _cursor: Any, sql: str, *_: Any) -> None:
        seen.append(sql.split(None, 1)[0].upper())

    engine = app.extensions["quartapp.db"].engine.sync_engine
    event.listen(engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", note)


async def post(client: TestClientProtocol, address: str, token: str) -> None:
    response = await client.post(REQUEST, form={"email": address, "csrf_token": token})
    assert SENT_PAGE in await response.get_data(as_text=True)


async def test_same_statements_for_known_and_unknown(app: Quart, auth: AuthActions) -> None:
    await add_address(app, "alice@example.com")
    token = await csrf_token(auth.client, REQUEST)
    with statements(app) as known:
        await post(auth.client, "alice@example.com", token)
    with statements(app) as unknown:
        await post(auth.client, "nobody@example.com", token)
    assert known == unknown, (known, unknown)
    assert "INSERT" in known  # the throttle's upserts and the rows themselves


@TIMING
async def test_same_time_for_known_and_unknown(settings: dict[str, Any], tmp_path: Any) -> None:
    app = create_app(
        {**settings, "RESET_REQUESTS_PER_EMAIL": 1000, "RESET_REQUESTS_PER_NETWORK": 1000}
    )
    from tests.conftest import add_user

    async with app.test_app():
        await add_user(app)
        await add_address(app, "alice@example.com")
        client = app.test_client()
        token = await csrf_token(client, REQUEST)
        durations: dict[str, list[float]] = {"known": [], "unknown": []}
        # Interleaved, so a slow spell of the machine falls on both alike.
        for _ in range(20):
            for kind, address in (
                ("known", "alice@example.com"),
                ("unknown", "nobody@example.com"),
            ):
                started = time.perf_counter()
                await post(client, address, token)
                durations[kind].append(time.perf_counter() - started)
    known = statistics.median(durations["known"])
    unknown = statistics.median(durations["unknown"])
    # A band, not a tight bound: two shared cores are noisy.
    assert 0.5 < known / unknown < 2.0, (known, unknown)
