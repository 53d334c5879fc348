"""A taken address answers like a new one: the same redirect and, loosely, the same
time (medians of interleaved runs, a ratio band), so timing does not tell which
addresses have accounts."""

from __future__ import annotations

import statistics
import time
from typing import Any

from quartapp import create_app
from tests.conftest import TIMING, add_user
from tests.mail.helpers import add_address

from .conftest import register


@TIMING
async def test_same_time_for_new_and_taken_addresses(settings: dict[str, Any]) -> None:
    app = create_app(
        {
            **settings,
            "REGISTRATIONS_PER_NETWORK_PER_HOUR": 1000,
            "REGISTRATIONS_PER_NETWORK_PER_DAY": 1000,
            "REGISTRATIONS_PER_HOUR": 1000,
            "REGISTRATION_EMAILS_PER_ADDRESS_PER_DAY": 1000,
        }
    )
    async with app.test_app():
        await add_user(app)
        await add_address(app, "alice@example.com")
        client = app.test_client()
        durations: dict[str, list[float]] = {"new": [], "taken": []}
        locations: set[str] = set()
        # Interleaved, so a slow spell of the machine falls on both alike.
        for n in range(15):
            for kind, address in (("new", f"new{n}@example.com"), ("taken", "alice@example.com")):
                started = time.perf_counter()
                response = await register(client, f"{kind}{n}", address)
                durations[kind].append(time.perf_counter() - started)
                assert response.status_code == 302
                locations.add(response.headers["Location"])
    assert locations == {"/login"}
    new = statistics.median(durations["new"])
    taken = statistics.median(durations["taken"])
    # A band, not a tight bound: two shared cores are noisy.
    print(f"\nregister, new address: {new:.4f} s, taken: {taken:.4f} s")
    assert 0.5 < new / taken < 2.0, (new, taken)
