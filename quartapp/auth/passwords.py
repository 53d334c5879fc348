"""Argon2id password hashing, run off the event loop under a bound.

Each hash holds ``ARGON2_MEMORY_COST`` KiB for tens of milliseconds. Running it on the
event loop would stall every other request; running an unbounded number in threads
would let a burst of logins take all memory. So hashing happens in the app's own
hashing threads (:mod:`.hashing`: at a lower OS priority than the event loop, so pages
keep being served during a burst of logins), at most ``HASHING_CONCURRENCY`` at a time
per process, with at most ``HASHING_QUEUE`` more
waiting. Those places are shared fairly: one client holds at most
``HASHING_PLACES_PER_CLIENT`` of them, and some are kept for trusted devices.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable, Collection, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TypeVar, cast

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from quart import Quart, current_app

from .. import signals
from ..web.errors import Busy
from . import hashing, settings
from .settings import AuthSettings

EXTENSION = "quartapp.passwords"
# Per process, by argon2 parameters (time, memory, parallelism): the dummy hash that an
# unknown user's password is checked against, and the seconds a check took.
_WARMED: dict[tuple[int, int, int], tuple[str, float]] = {}
T = TypeVar("T")


@dataclass
class Verification:
    """The outcome of checking a password: whether it matched and any upgraded hash."""

    ok: bool
    new_hash: str | None = None


@dataclass
class Passwords:
    """One app's hasher, its concurrency bound, its queue bound and its dummy hash."""

    hasher: PasswordHasher
    limit: asyncio.Semaphore
    slots: int = 2
    queue: int = 8
    # Places one client key may hold at once, and places kept for trusted devices.
    share: int = 2
    reserve: int = 2
    # Places in line taken: hashing now, or admitted and on the way to it.
    admitted: int = 0
    # Places held per client key (see admission()); keys holding none are dropped.
    holding: dict[str, int] = field(default_factory=dict)
    # Seconds one verification takes at the current parameters: a failed one is padded
    # up to it, so a hash made with older (cheaper) parameters answers no faster than
    # an unknown user's. Measured at warm-up and kept as a moving average.
    reference: float = 0.0
    # The clock that times a check and the sleep that pads a failure: a test gives a fake
    # pair to check the padding exactly, where a real clock on a busy machine is noise.
    clock: Callable[[], float] = time.perf_counter
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep
    # The hashing threads (hashing.executor, ``slots`` of them at ``nice``); None:
    # asyncio's default threads.
    pool: ThreadPoolExecutor | None = None
    nice: int = hashing.HASHING_NICE
    _dummy_hash: str | None = field(default=None, repr=False)

    def has_room(self, keys: Collection[str] = (), *, trusted: bool = False) -> bool:
        """Whether :meth:`admission` would let a login with these client keys in now.

        A key holding its ``share`` of places gets no more, so one client (an address
        network, a username) cannot fill the line. The last ``reserve`` places are for
        logins from a trusted device, which a flood of unknown names cannot present.
        """
        room = self.slots + self.queue - (0 if trusted else self.reserve)
        if self.admitted >= room:
            return False
        return all(self.holding.get(key, 0) < self.share for key in keys)

    @contextmanager
    def admission(self, keys: Collection[str] = (), *, trusted: bool = False) -> Iterator[None]:
        """A place in line for hashing; :class:`Busy` at once when there is no room.

        There are ``slots`` (hashing now) plus ``queue`` (waiting) places, shared
        fairly between client ``keys`` (:meth:`has_room`). A login takes its place
        only once the throttle has found it is not refused, and *before* the throttle
        counts it, keeping it until its verification ends: a login refused for lack of
        room is refused before it is counted, so a burst cannot lock a user out by
        being turned away. Without the bound a burst would wait here in thousands,
        each holding a request open.
        """
        keys = set(keys)
        if not self.has_room(keys, trusted=trusted):
            raise Busy
        self.admitted += 1
        signals.send(signals.hashing_queue_changed, depth=self.admitted)
        for key in keys:
            self.holding[key] = self.holding.get(key, 0) + 1
        try:
            yield
        finally:
            self.admitted -= 1
            signals.send(signals.hashing_queue_changed, depth=self.admitted)
            for key in keys:
                left = self.holding[key] - 1
                if left:
                    self.holding[key] = left
                else:
                    del self.holding[key]

    async def _bounded(self, work: Callable[[], T]) -> T:
        """Run ``work`` in a hashing thread, at most ``slots`` at a time."""
        async with self.limit:
            return await asyncio.get_running_loop().run_in_executor(self.pool, work)

    def close(self) -> None:
        """Let the hashing threads end (when the app stops serving).

        A fresh pool takes the old one's place, with no thread until a hash needs one,
        so an app served again (tests do) still hashes.
        """
        if self.pool is not None:
            old, self.pool = self.pool, hashing.executor(self.slots, self.nice)
            old.shutdown(wait=False, cancel_futures=True)

    async def hash(self, password: str) -> str:
        """Hash a new password with the configured parameters."""
        with self.admission():
            return await self._bounded(lambda: self.hasher.hash(password))

    async def verify(
        self, stored_hash: str | None, password: str, *, admitted: bool = False
    ) -> Verification:
        """Check ``password`` against ``stored_hash``, taking the same time on failure.

        With no stored hash (an unknown user) the password is checked against a dummy
        hash made with the current parameters; a failure against a cheaper, older hash
        is padded up to that cost. So timing reveals neither which names exist nor
        whose hash predates a cost increase.
        """
        if not admitted:
            with self.admission():
                return await self.verify(stored_hash, password, admitted=True)
        target = stored_hash if stored_hash is not None else await self._dummy()
        current = stored_hash is None or self._is_current(stored_hash)
        ok, seconds = await self._bounded(lambda: self._timed_check(target, password))
        if current:
            self.reference = (
                seconds if not self.reference else 0.8 * self.reference + 0.2 * seconds
            )
        if not ok or stored_hash is None:
            if seconds < self.reference:
                await self.sleep(self.reference - seconds)
            return Verification(ok=False)
        if not current:
            new_hash = await self._bounded(lambda: self.hasher.hash(password))
            return Verification(ok=True, new_hash=new_hash)
        return Verification(ok=True)

    def _is_current(self, stored_hash: str) -> bool:
        """Whether a stored hash uses the current parameters (a malformed one does not)."""
        try:
            return not self.hasher.check_needs_rehash(stored_hash)
        except InvalidHashError:
            return False

    def _timed_check(self, stored_hash: str, password: str) -> tuple[bool, float]:
        started = self.clock()
        ok = self._check(stored_hash, password)
        return ok, self.clock() - started

    def _check(self, stored_hash: str, password: str) -> bool:
        try:
            return self.hasher.verify(stored_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    async def warm_up(self) -> None:
        """Make the dummy hash and time a check, so the first login is not the odd one.

        Once per process and argon2 parameters (:data:`_WARMED`), on the real clock: a
        served process builds one app, but the CLI and a test run build many, and two
        hashes each (about 50 ms of CPU) would measure the same machine again.
        """
        key = (self.hasher.time_cost, self.hasher.memory_cost, self.hasher.parallelism)
        real_clock = self.clock is time.perf_counter
        if real_clock and key in _WARMED:
            self._dummy_hash, self.reference = _WARMED[key]
            return
        dummy = await self._dummy()
        _, self.reference = await self._bounded(lambda: self._timed_check(dummy, "x"))
        if real_clock:
            _WARMED[key] = (dummy, self.reference)

    async def _dummy(self) -> str:
        if self._dummy_hash is None:
            dummy = secrets.token_urlsafe(32)
            self._dummy_hash = await self._bounded(lambda: self.hasher.hash(dummy))
        return self._dummy_hash


def build(config: AuthSettings) -> Passwords:
    """A hashing service from the ``ARGON2_*`` and ``HASHING_*`` settings.

    Trusted devices get as many reserved places as one client may hold, as long as
    that leaves the others that many too. The CLI builds its own: its semaphore then
    belongs to the CLI's event loop.
    """
    places = config.hashing_concurrency + config.hashing_queue
    share = config.hashing_places_per_client
    reserve = max(0, min(share, places - share))
    return Passwords(
        hasher=PasswordHasher(
            time_cost=config.argon2_time_cost,
            memory_cost=config.argon2_memory_cost,
            parallelism=config.argon2_parallelism,
        ),
        limit=asyncio.Semaphore(config.hashing_concurrency),
        slots=config.hashing_concurrency,
        queue=config.hashing_queue,
        pool=hashing.executor(config.hashing_concurrency, config.hashing_nice),
        nice=config.hashing_nice,
        share=share,
        reserve=reserve,
    )


def init_app(app: Quart) -> None:
    """Give the app its hashing service, with the dummy hash made at startup."""
    service = app.extensions[EXTENSION] = build(settings.of(app))
    app.before_serving(service.warm_up)
    app.after_serving(service.close)


def passwords(app: Quart | None = None) -> Passwords:
    """The hashing service of ``app``, or of the current app."""
    return cast(Passwords, (app or current_app).extensions[EXTENSION])
