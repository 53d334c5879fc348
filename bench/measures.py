"""What the bench measures besides wrk: the shipped argon2 cost and a server's memory."""

from __future__ import annotations

import os
import secrets
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bench.servers import Server

if TYPE_CHECKING:
    from quartapp.auth.settings import AuthSettings

RSS_SAMPLE_SECONDS = 0.05
HASH_SAMPLES = 5


@dataclass(frozen=True)
class Hashing:
    """The shipped argon2 cost and the login rate it allows one worker."""

    memory_kib: int
    time_cost: int
    parallelism: int
    concurrency: int
    seconds: float
    cores: int

    @property
    def limit(self) -> float:
        """Logins per second: HASHING_CONCURRENCY hashes at once, no more than the cores."""
        return min(self.concurrency, self.cores) / self.seconds


def shipped_config() -> AuthSettings:
    """The hashing settings a fresh checkout serves with: the defaults and config.toml."""
    from quartapp import load_config
    from quartapp.auth.settings import AuthSettings

    # An empty instance folder: a fresh checkout has no secrets.toml yet.
    with tempfile.TemporaryDirectory() as instance:
        return AuthSettings.from_config(load_config({"INSTANCE_PATH": instance}))


def measure_hashing() -> Hashing:
    """Time one login's argon2 verify in this process, at the shipped parameters."""
    from quartapp.auth import passwords

    config = shipped_config()
    hasher = passwords.build(config).hasher
    password = secrets.token_urlsafe(24)
    stored = hasher.hash(password)
    times = []
    for _ in range(HASH_SAMPLES):
        started = time.perf_counter()
        hasher.verify(stored, password)
        times.append(time.perf_counter() - started)
    return Hashing(
        memory_kib=config.argon2_memory_cost,
        time_cost=config.argon2_time_cost,
        parallelism=config.argon2_parallelism,
        concurrency=config.hashing_concurrency,
        seconds=statistics.median(times),
        cores=os.cpu_count() or 1,
    )


@contextmanager
def sampling(server: Server) -> Iterator[list[int]]:
    """RSS of the server's process tree, sampled from /proc until the block ends.

    The list starts with one sample taken before the block: the idle figure.
    """
    samples = [server.rss_bytes()]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(RSS_SAMPLE_SECONDS):
            samples.append(server.rss_bytes())

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield samples
    finally:
        done.set()
        thread.join()
