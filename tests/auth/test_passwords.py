"""Tests for argon2id hashing: its parameters, unknown users, the bound, the event loop."""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, Literal

import pytest
from argon2 import PasswordHasher
from quart import Quart

from quartapp import setting_parts
from quartapp.auth.passwords import Passwords, Verification, passwords
from quartapp.auth.passwords import build as build_service
from quartapp.auth.settings import ARGON2_MINIMUM
from quartapp.settings import read_toml, table
from quartapp.web.errors import Busy
from tests.conftest import PASSWORD
from tests.support.settings import DEFAULTS
from tests.support.settings import auth as auth_settings

ROOT = Path(__file__).parents[2]
HASH_PARAMETERS = re.compile(r"\$argon2id\$v=19\$m=(\d+),t=(\d+),p=(\d+)\$")
# OWASP Password Storage Cheat Sheet, argon2id: at least 19 MiB of memory, 2 passes, 1 lane.
OWASP_MINIMUM = {"ARGON2_MEMORY_COST": 19456, "ARGON2_TIME_COST": 2, "ARGON2_PARALLELISM": 1}
CONFIG: dict[str, Any] = {
    **OWASP_MINIMUM,
    "HASHING_CONCURRENCY": 1,
    "HASHING_QUEUE": 8,
    "HASHING_PLACES_PER_CLIENT": 2,
}
# Only a guard against hanging forever when the code under test is broken.
HANG_GUARD = 30


def parameters(password_hash: str) -> tuple[int, int, int]:
    """Memory, time and parallelism of an argon2id hash, read from its prefix."""
    match = HASH_PARAMETERS.match(password_hash)
    assert match, f"not an argon2id hash: {password_hash!r}"
    memory, time, lanes = map(int, match.groups())
    return memory, time, lanes


class WatchedHasher(PasswordHasher):
    """A real argon2 hasher that counts how many of its computations run at once.

    ``together`` computations wait for each other before going on, so a test sees that
    many overlap whenever the code under test lets them.
    """

    def __init__(self, config: dict[str, Any], together: int = 1) -> None:
        super().__init__(
            time_cost=config["ARGON2_TIME_COST"],
            memory_cost=config["ARGON2_MEMORY_COST"],
            parallelism=config["ARGON2_PARALLELISM"],
        )
        self.lock = threading.Lock()
        self.running = 0
        self.peak = 0
        self.calls = 0
        self.verified: list[str] = []
        self.meet = threading.Barrier(together, timeout=HANG_GUARD)

    @contextmanager
    def computing(self) -> Iterator[None]:
        with self.lock:
            self.calls += 1
            self.running += 1
            self.peak = max(self.peak, self.running)
        try:
            self.meet.wait()
            yield
        finally:
            with self.lock:
                self.running -= 1

    def hash(self, password: str | bytes, *, salt: bytes | None = None) -> str:
        with self.computing():
            return super().hash(password, salt=salt)

    def verify(self, hash: str | bytes, password: str | bytes) -> Literal[True]:
        with self.computing():
            self.verified.append(str(hash))
            return super().verify(hash, password)


class PausingHasher(PasswordHasher):
    """A real argon2 hasher that, once started, waits for the event loop to let it go."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(
            time_cost=config["ARGON2_TIME_COST"],
            memory_cost=config["ARGON2_MEMORY_COST"],
            parallelism=config["ARGON2_PARALLELISM"],
        )
        self.started = threading.Event()
        self.go_on = threading.Event()
        self.let_go: list[bool] = []

    def pause(self) -> None:
        self.started.set()
        # On the event loop's own thread this wait cannot end early: the loop is stuck here.
        self.let_go.append(self.go_on.wait(timeout=HANG_GUARD))

    def hash(self, password: str | bytes, *, salt: bytes | None = None) -> str:
        self.pause()
        return super().hash(password, salt=salt)

    def verify(self, hash: str | bytes, password: str | bytes) -> Literal[True]:
        self.pause()
        return super().verify(hash, password)


def build(config: dict[str, Any]) -> Passwords:
    """The hashing service of an app with these settings."""
    return build_service(auth_settings(**config))


def instrumented(config: dict[str, Any], hasher: PasswordHasher) -> Passwords:
    """``build(config)``, its bound included, with the argon2 work done by ``hasher``."""
    built = build(config)
    built.hasher = hasher
    return built


# Parameters


@pytest.mark.parametrize(
    ("memory", "time", "lanes"),
    [(19456, 2, 1), (32768, 3, 1), (19456, 2, 2), (65536, 4, 1)],
)
async def test_hash_is_argon2id_with_the_configured_parameters(
    memory: int, time: int, lanes: int
) -> None:
    config = {
        "ARGON2_MEMORY_COST": memory,
        "ARGON2_TIME_COST": time,
        "ARGON2_PARALLELISM": lanes,
        "HASHING_CONCURRENCY": 1,
        "HASHING_QUEUE": 8,
        "HASHING_PLACES_PER_CLIENT": 2,
    }

    password_hash = await build(config).hash(PASSWORD)

    assert parameters(password_hash) == (memory, time, lanes)


@pytest.mark.real_hashing
async def test_app_hashes_with_its_settings(app: Quart) -> None:
    password_hash = await passwords(app).hash(PASSWORD)

    assert parameters(password_hash) == (19456, 2, 1)


async def test_hashing_the_same_password_twice_gives_different_salts() -> None:
    hasher = build(CONFIG)

    assert await hasher.hash(PASSWORD) != await hasher.hash(PASSWORD)


@pytest.mark.parametrize(
    "settings",
    [
        DEFAULTS,
        {**DEFAULTS, **read_toml(ROOT / "config.toml", table(setting_parts()), required=True)},
        ARGON2_MINIMUM,
    ],
    ids=["settings.py-defaults", "config.toml", "validation-floor"],
)
def test_configured_cost_is_at_least_the_owasp_minimum(settings: dict[str, Any]) -> None:
    for name, minimum in OWASP_MINIMUM.items():
        assert settings[name] >= minimum, name


# Verifying


async def test_verify_accepts_the_right_password() -> None:
    hasher = build(CONFIG)
    stored = await hasher.hash(PASSWORD)

    assert await hasher.verify(stored, PASSWORD) == Verification(ok=True, new_hash=None)


@pytest.mark.parametrize(
    "password",
    ["not the right password", f"{PASSWORD} ", f" {PASSWORD}", PASSWORD.upper(), ""],
    ids=["wrong", "trailing-space", "leading-space", "other-case", "empty"],
)
async def test_verify_refuses_a_password_that_is_not_exactly_the_stored_one(
    password: str,
) -> None:
    hasher = build(CONFIG)
    stored = await hasher.hash(PASSWORD)

    assert await hasher.verify(stored, password) == Verification(ok=False)


@pytest.mark.parametrize(
    "stored",
    [None, "not an argon2 hash", "", "$argon2id$v=19$m=19456,t=2,p=1$broken"],
    ids=["unknown-user", "malformed-hash", "empty-hash", "truncated-hash"],
)
async def test_verify_refuses_without_a_usable_hash(stored: str | None) -> None:
    assert await build(CONFIG).verify(stored, PASSWORD) == Verification(ok=False)


async def test_verify_of_an_unknown_user_does_the_same_argon2_work() -> None:
    watched = WatchedHasher(CONFIG)
    hasher = instrumented(CONFIG, watched)
    await hasher.warm_up()
    watched.verified.clear()  # warm-up times one check of the dummy hash

    await hasher.verify(None, PASSWORD)

    assert len(watched.verified) == 1
    assert parameters(watched.verified[0]) == (19456, 2, 1)


class FakeClock:
    """The clock and sleep of a :class:`Passwords`, under the test's control.

    A check reads the clock twice; the second reading is the next of ``durations``
    later. ``sleep`` records each padding and moves the clock on by it at once.
    """

    def __init__(self, *durations: float) -> None:
        self.durations = list(durations)
        self.now = 0.0
        self.reads = 0
        self.slept: list[float] = []

    def __call__(self) -> float:
        self.reads += 1
        if self.reads % 2 == 0:
            self.now += self.durations.pop(0)
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def on_clock(config: dict[str, Any], clock: FakeClock) -> Passwords:
    """``build(config)`` timing its checks with ``clock`` (argon2 itself is real)."""
    built = build(config)
    built.clock = clock
    built.sleep = clock.sleep
    return built


async def test_failures_are_padded_up_to_the_time_of_a_current_check() -> None:
    old = await build(CONFIG).hash(PASSWORD)  # the cheapest cost, t=2
    current = {**CONFIG, "ARGON2_TIME_COST": 3}
    # Seconds each check takes: warm-up, then the verifications below in order.
    clock = FakeClock(0.100, 0.025, 0.100, 0.200, 0.025, 0.100, 0.025, 0.150)
    hasher = on_clock(current, clock)
    await hasher.warm_up()
    assert hasher.reference == pytest.approx(0.100)

    # A wrong password against the older, cheaper hash waits out the difference.
    assert await hasher.verify(old, "wrong") == Verification(ok=False)
    assert clock.slept == [pytest.approx(0.075)]
    # An unknown user's check is a current one: as long as the reference, nothing to add.
    assert await hasher.verify(None, PASSWORD) == Verification(ok=False)
    assert clock.slept == [pytest.approx(0.075)]
    # A slower current check moves the reference a fifth of the way: 0.8 * 0.1 + 0.2 * 0.2.
    assert await hasher.verify(None, PASSWORD) == Verification(ok=False)
    assert hasher.reference == pytest.approx(0.120)
    assert await hasher.verify(old, "wrong") == Verification(ok=False)
    assert clock.slept[1:] == [pytest.approx(0.095)]
    # A wrong password against a current hash that ran fast is padded too, up to the
    # reference that has taken this check in: 0.8 * 0.12 + 0.2 * 0.1 = 0.116.
    new = await hasher.hash(PASSWORD)
    assert await hasher.verify(new, "wrong") == Verification(ok=False)
    assert clock.slept[2:] == [pytest.approx(0.016)]
    # A right password is never held back, even against an old hash (it gets a new one).
    result = await hasher.verify(old, PASSWORD)
    assert result.ok
    assert result.new_hash is not None
    assert clock.slept[3:] == []
    # ...nor against a current one.
    assert await hasher.verify(new, PASSWORD) == Verification(ok=True)
    assert clock.slept[3:] == []
    assert clock.durations == []


async def test_verify_offers_a_new_hash_when_the_parameters_changed() -> None:
    old = await build(CONFIG).hash(PASSWORD)
    current = {**CONFIG, "ARGON2_TIME_COST": 3}

    result = await build(current).verify(old, PASSWORD)

    assert result.ok
    assert result.new_hash is not None
    assert parameters(result.new_hash) == (19456, 3, 1)
    assert PasswordHasher().verify(result.new_hash, PASSWORD)


# Running argon2: bounded, and off the event loop


@pytest.mark.parametrize("limit", [1, 2, 3])
async def test_no_more_than_the_configured_number_of_hashes_run_at_once(limit: int) -> None:
    config = {**CONFIG, "HASHING_CONCURRENCY": limit}
    watched = WatchedHasher(config, together=limit)
    hasher = instrumented(config, watched)

    await asyncio.gather(*(hasher.hash(f"password number {n}") for n in range(3 * limit)))

    assert watched.calls == 3 * limit
    assert watched.peak == limit


async def test_hashes_and_verifies_share_the_bound() -> None:
    stored = await build(CONFIG).hash(PASSWORD)
    watched = WatchedHasher(CONFIG)
    hasher = instrumented(CONFIG, watched)

    await asyncio.gather(
        *(hasher.hash(f"password number {n}") for n in range(3)),
        *(hasher.verify(stored, PASSWORD) for _ in range(3)),
        hasher.verify(None, PASSWORD),
    )

    assert watched.peak == 1


@pytest.mark.parametrize("operation", ["hash", "verify"])
async def test_event_loop_keeps_running_while_argon2_computes(operation: str) -> None:
    stored = await build(CONFIG).hash(PASSWORD)
    paused = PausingHasher(CONFIG)
    hasher = instrumented(CONFIG, paused)
    work = hasher.hash(PASSWORD) if operation == "hash" else hasher.verify(stored, PASSWORD)
    task = asyncio.ensure_future(work)

    # Wait until argon2 has begun, then show the loop going on with other work meanwhile.
    assert await asyncio.to_thread(paused.started.wait, HANG_GUARD)
    for _ in range(10):
        await asyncio.sleep(0)
    paused.go_on.set()
    await task

    assert paused.let_go == [True]


# Fair shares of the line: no client fills it (issue 12)


def test_one_client_holds_at_most_its_share_of_the_line() -> None:
    hasher = build(CONFIG)  # 1 slot + 8 waiting, 2 places per client, 2 for devices
    with ExitStack() as held:
        for _ in range(2):
            held.enter_context(hasher.admission(["addr:198.51.100.7", "user:n"]))

        with pytest.raises(Busy):  # the same address, another name
            held.enter_context(hasher.admission(["addr:198.51.100.7", "user:m"]))
        with pytest.raises(Busy):  # the same name, another address
            held.enter_context(hasher.admission(["addr:203.0.113.5", "user:n"]))
        held.enter_context(hasher.admission(["addr:203.0.113.5", "user:m"]))

        assert hasher.admitted == 3
    assert hasher.admitted == 0
    assert hasher.holding == {}


def test_the_last_places_are_kept_for_trusted_devices() -> None:
    hasher = build(CONFIG)
    with ExitStack() as held:
        for number in range(7):  # 9 places, 2 of them reserved
            held.enter_context(hasher.admission([f"addr:10.0.0.{number}"]))

        assert not hasher.has_room(["addr:10.0.1.1"])
        with pytest.raises(Busy):
            held.enter_context(hasher.admission(["addr:10.0.1.1"]))
        held.enter_context(hasher.admission(["addr:10.0.1.1", "device:alice"], trusted=True))
        held.enter_context(hasher.admission(["addr:10.0.1.2", "device:bob"], trusted=True))
        with pytest.raises(Busy):  # the line is full for everyone
            held.enter_context(hasher.admission(["addr:10.0.1.3", "device:carol"], trusted=True))


def test_reserved_places_never_leave_other_clients_without_room() -> None:
    small = build({**CONFIG, "HASHING_CONCURRENCY": 1, "HASHING_QUEUE": 1})

    assert (small.share, small.reserve) == (2, 0)
    assert small.has_room(["addr:198.51.100.7"])
