"""Argon2id password hashing, run off the event loop under a bound.

Each hash holds ``ARGON2_MEMORY_COST`` KiB for tens of milliseconds. Running it on the
event loop would stall every other request; running an unbounded number in threads
would let a burst of logins take all memory. So hashing happens in worker threads, at
most ``HASHING_CONCURRENCY`` at a time per process.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from quart import Quart, current_app

EXTENSION = "quartapp.passwords"
T = TypeVar("T")


@dataclass
class Verification:
    """The outcome of checking a password: whether it matched and any upgraded hash."""

    ok: bool
    new_hash: str | None = None


class Busy(Exception):
    """Too many logins are already waiting to hash; try again shortly."""


@dataclass
class Passwords:
    """One app's hasher, its concurrency bound, its queue bound and its dummy hash."""

    hasher: PasswordHasher
    limit: asyncio.Semaphore
    slots: int = 2
    queue: int = 8
    # Places in line taken: hashing now, or admitted and on the way to it.
    admitted: int = 0
    # Seconds one verification takes at the current parameters: a failed one is padded
    # up to it, so a hash made with older (cheaper) parameters answers no faster than
    # an unknown user's. Measured at warm-up and kept as a moving average.
    reference: float = 0.0
    _dummy_hash: str | None = field(default=None, repr=False)

    @contextmanager
    def admission(self) -> Iterator[None]:
        """A place in line for hashing; :class:`Busy` at once when every place is taken.

        There are ``slots`` (hashing now) plus ``queue`` (waiting) places. A login takes
        its place *before* the throttle counts it and keeps it until its verification
        ends, so a login refused for lack of room is refused before it is counted:
        a burst cannot lock a user out by being turned away. Without the bound a burst
        would wait here in thousands, each holding a request open.
        """
        if self.admitted >= self.slots + self.queue:
            raise Busy
        self.admitted += 1
        try:
            yield
        finally:
            self.admitted -= 1

    async def _bounded(self, work: Callable[[], T]) -> T:
        """Run ``work`` in a thread, at most ``slots`` at a time."""
        async with self.limit:
            return await asyncio.to_thread(work)

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
                await asyncio.sleep(self.reference - seconds)
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
        started = time.perf_counter()
        ok = self._check(stored_hash, password)
        return ok, time.perf_counter() - started

    def _check(self, stored_hash: str, password: str) -> bool:
        try:
            return self.hasher.verify(stored_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    async def warm_up(self) -> None:
        """Make the dummy hash and time a check, so the first login is not the odd one."""
        dummy = await self._dummy()
        _, self.reference = await self._bounded(lambda: self._timed_check(dummy, "x"))

    async def _dummy(self) -> str:
        if self._dummy_hash is None:
            dummy = secrets.token_urlsafe(32)
            self._dummy_hash = await self._bounded(lambda: self.hasher.hash(dummy))
        return self._dummy_hash


def build(config: Mapping[str, Any]) -> Passwords:
    """A hashing service from the ``ARGON2_*`` and ``HASHING_CONCURRENCY`` settings.

    The CLI builds its own: its semaphore then belongs to the CLI's event loop.
    """
    return Passwords(
        hasher=PasswordHasher(
            time_cost=config["ARGON2_TIME_COST"],
            memory_cost=config["ARGON2_MEMORY_COST"],
            parallelism=config["ARGON2_PARALLELISM"],
        ),
        limit=asyncio.Semaphore(config["HASHING_CONCURRENCY"]),
        slots=config["HASHING_CONCURRENCY"],
        queue=config["HASHING_QUEUE"],
    )


def init_app(app: Quart) -> None:
    """Give the app its hashing service, with the dummy hash made at startup."""
    service = app.extensions[EXTENSION] = build(app.config)
    app.before_serving(service.warm_up)


def passwords(app: Quart | None = None) -> Passwords:
    """The hashing service of ``app``, or of the current app."""
    return (app or current_app).extensions[EXTENSION]
