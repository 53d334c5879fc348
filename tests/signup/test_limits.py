"""Sign-up's limits: per network, for everyone, per destination address, on resends;
a flood stays bounded and the prune takes the unconfirmed accounts away; races on the
username and on one link are settled by the database."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

import pytest
from quart import Quart

from tests.conftest import BOTH_DATABASES, AuthActions, aquery, body, csrf_token, invoke
from tests.mail.helpers import link_in, outbox

from .conftest import CONFIRM_LINK, NEW_PASSWORD, register

if TYPE_CHECKING:
    from quart.typing import TestClientProtocol

NETWORK_HOUR, NETWORK_DAY, EVERYONE, PER_ADDRESS = 3, 5, 8, 2


@pytest.fixture
def settings(settings: dict[str, Any]) -> dict[str, Any]:
    """Small limits, and one trusted proxy, whose X-Forwarded-For names the client."""
    settings.update(
        REGISTRATIONS_PER_NETWORK_PER_HOUR=NETWORK_HOUR,
        REGISTRATIONS_PER_NETWORK_PER_DAY=NETWORK_DAY,
        REGISTRATIONS_PER_HOUR=EVERYONE,
        REGISTRATION_EMAILS_PER_ADDRESS_PER_DAY=PER_ADDRESS,
        TRUSTED_PROXY_HOPS=1,
    )
    return settings


async def count(settings: dict[str, Any], table: str) -> int:
    [(found,)] = await aquery(settings, f"SELECT count(*) FROM {table}")
    return int(found)


def from_address(address: str) -> dict[str, str]:
    return {"X-Forwarded-For": address}


async def test_network_limit_is_a_429_with_the_wait(
    app: Quart, client: TestClientProtocol, settings: dict[str, Any]
) -> None:
    statuses = [
        (
            await register(
                client, f"user{n}", f"u{n}@example.com", headers=from_address("198.51.100.7")
            )
        ).status_code
        for n in range(NETWORK_HOUR)
    ]
    assert statuses == [302] * NETWORK_HOUR
    over = await register(client, "late", "late@example.com", headers=from_address("198.51.100.7"))
    assert over.status_code == 429
    assert int(over.headers["Retry-After"]) > 0
    assert "Try again in" in await body(over)
    other = await register(
        client, "other", "other@example.com", headers=from_address("198.51.100.8")
    )
    assert other.status_code == 302


async def test_ipv6_networks_are_counted_together(app: Quart, client: TestClientProtocol) -> None:
    # Each attempt from another /64 of one /48: the /48's counter meets the limit.
    for n in range(NETWORK_HOUR):
        response = await register(
            client, f"six{n}", f"six{n}@example.com", headers=from_address(f"2001:db8:1:{n}::1")
        )
        assert response.status_code == 302
    over = await register(
        client, "six9", "six9@example.com", headers=from_address("2001:db8:1:99::1")
    )
    assert over.status_code == 429


async def test_taken_usernames_count_against_the_network(
    app: Quart, auth: AuthActions, client: TestClientProtocol
) -> None:
    for _ in range(NETWORK_HOUR):
        taken = await register(
            client, "alice", "x@example.com", headers=from_address("198.51.100.9")
        )
        assert taken.status_code == 400
    assert (
        await register(client, "alice", "x@example.com", headers=from_address("198.51.100.9"))
    ).status_code == 429


async def test_emails_per_destination_address(
    app: Quart, client: TestClientProtocol, settings: dict[str, Any]
) -> None:
    # Taken or new, each attempt is one email to the address: the limit is the same.
    for n in range(PER_ADDRESS):
        response = await register(
            client, f"dest{n}", "target@example.com", headers=from_address(f"198.51.100.{20 + n}")
        )
        assert response.status_code == 302
    over = await register(
        client, "dest9", "target@example.com", headers=from_address("198.51.100.40")
    )
    assert over.status_code == 429
    assert len(await outbox(settings)) == PER_ADDRESS
    assert [m.kind for m in await outbox(settings)] == ["signup-confirm", "signup-taken"]


async def test_resend_limits(
    app: Quart, client: TestClientProtocol, settings: dict[str, Any]
) -> None:
    await register(client)
    auth = AuthActions(client)
    await auth.login("bob", NEW_PASSWORD)

    async def resend() -> Any:
        token = await csrf_token(client, "/confirm_email")
        return await client.post("/confirm_email", form={"csrf_token": token})

    first = await resend()
    assert first.status_code == 302
    assert len(await outbox(settings, "signup-confirm")) == 2
    soon = await resend()
    assert soon.status_code == 429
    assert "Try again in 3 minutes" in await body(soon)
    assert len(await outbox(settings, "signup-confirm")) == 2
    # The newest link works; the first one was ended by it.
    first_token, newest = (
        link_in(m, CONFIRM_LINK) for m in await outbox(settings, "signup-confirm")
    )
    assert (await client.get(f"/confirm_email/{first_token}")).status_code == 410
    assert (await client.get(f"/confirm_email/{newest}")).status_code == 200

    # Past the interval (its window moved into the past), up to the day's limit.
    for _ in range(10):
        await aquery(
            settings, "UPDATE throttle_counters SET window_end = 0 WHERE scope = 'resend'"
        )
        await resend()
    assert len(await outbox(settings, "signup-confirm")) == 1 + 5
    resend_rows = await aquery(
        settings, "SELECT scope FROM throttle_counters WHERE scope LIKE 'resend%'"
    )
    assert len(resend_rows) == 3  # the account's two and the network's: no row per try


async def test_flood_stays_bounded_and_is_pruned(
    app: Quart, client: TestClientProtocol, runner: Any, settings: dict[str, Any]
) -> None:
    # One network, then many forged addresses (each taken as a client's own by the
    # trusted proxy's header): the network's limit, then everyone's, holds.
    attempts = 0
    for n in range(20):
        await register(
            client, f"one{n}", f"one{n}@example.com", headers=from_address("203.0.113.1")
        )
        attempts += 1
    for n in range(60):
        await register(
            client,
            f"many{n}",
            f"many{n}@example.com",
            headers=from_address(f"10.{n // 250}.{n % 250}.1"),
        )
        attempts += 1
    users = await count(settings, "users")
    assert users <= EVERYONE
    assert await count(settings, "mail_outbox") <= EVERYONE
    assert await count(settings, "registrations") == users
    # Counters: one per network that tried (and its day's), plus everyone's and each
    # destination's: bounded by the attempts, not growing per refused attempt.
    assert await count(settings, "throttle_counters") <= 2 * 61 + 1 + EVERYONE

    # A week later: the accounts were never confirmed, and the windows are over.
    await aquery(settings, "UPDATE registrations SET created_at = created_at - 8 * 86400")
    await aquery(settings, "UPDATE throttle_counters SET window_end = window_end - 2 * 86400")
    result = await invoke(runner, "db", "prune")
    assert result.exit_code == 0, result.output
    assert await count(settings, "users") == 0
    assert await count(settings, "mail_outbox") == 0
    assert await count(settings, "mail_tokens") == 0
    assert await count(settings, "email_addresses") == 0
    assert await count(settings, "throttle_counters") == 0


async def test_prune_keeps_confirmed_and_recent(
    app: Quart, client: TestClientProtocol, runner: Any, settings: dict[str, Any]
) -> None:
    await register(client, "old", "old@example.com")
    await register(client, "kept", "kept@example.com")
    await aquery(settings, "UPDATE registrations SET created_at = created_at - 8 * 86400")
    await invoke(runner, "users", "confirm", "kept")
    await register(client, "fresh", "fresh@example.com")
    await invoke(runner, "db", "prune")
    names = {name for (name,) in await aquery(settings, "SELECT username FROM users")}
    assert names == {"kept", "fresh"}


@BOTH_DATABASES
async def test_racing_registrations_of_one_name_make_one_account(
    app: Quart, settings: dict[str, Any]
) -> None:
    clients = [app.test_client() for _ in range(4)]
    tokens = [await csrf_token(c, "/register") for c in clients]

    async def post(n: int) -> int:
        response = await clients[n].post(
            "/register",
            form={
                "username": "racer",
                "email": f"racer{n}@example.com",
                "password": NEW_PASSWORD,
                "password2": NEW_PASSWORD,
                "csrf_token": tokens[n],
            },
            headers=from_address(f"198.51.100.{60 + n}"),
        )
        return response.status_code

    statuses = await asyncio.gather(*(post(n) for n in range(4)))
    assert sorted(statuses).count(302) == 1
    assert await count(settings, "users") == 1
    assert await count(settings, "registrations") == 1
    assert await count(settings, "mail_outbox") == 1


@BOTH_DATABASES
async def test_one_link_confirms_once(
    app: Quart, client: TestClientProtocol, settings: dict[str, Any]
) -> None:
    await register(client)
    token = link_in((await outbox(settings, "signup-confirm"))[0], CONFIRM_LINK)
    clients = [app.test_client() for _ in range(3)]
    forms = [await csrf_token(c, f"/confirm_email/{token}") for c in clients]
    responses = await asyncio.gather(
        *(
            c.post(f"/confirm_email/{token}", form={"csrf_token": f})
            for c, f in zip(clients, forms, strict=True)
        )
    )
    assert sorted(r.status_code for r in responses) == [302, 410, 410]
    [(at,)] = await aquery(settings, "SELECT confirmed_at FROM registrations")
    assert at is not None
    assert at <= time.time()
