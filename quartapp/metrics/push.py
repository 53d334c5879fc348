"""The push to a Prometheus Pushgateway, for platforms where only a router is reachable.

On Heroku, Prometheus cannot reach a dyno: every scrape of ``/metrics`` goes through
the router to any dyno. With ``METRICS_PUSH_URL`` set, each dyno pushes instead. Its
workers elect one pusher, the one holding an ``flock`` on a file in the shared
multiprocess folder; the others try again every interval, so when the pusher dies the
kernel frees the lock and another takes over within one interval. The pusher sends
every worker's values, summed as a scrape would show them, every
``METRICS_PUSH_INTERVAL`` seconds, with ``PUT`` under the grouping key
``{job="quartapp", instance=<METRICS_INSTANCE or DYNO>}``: a ``PUT`` replaces the whole
group, so series of a worker that has gone (its process figures) go with it. At
shutdown the group is deleted, so a dyno scaled away leaves no series behind that
Prometheus would go on reading as current. A push that fails is logged (once, until
one succeeds again) and never stops the worker.

Blocking HTTP runs in a thread, off the event loop, with a timeout under the interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from prometheus_client import CollectorRegistry, delete_from_gateway, push_to_gateway
from prometheus_client.exposition import basic_auth_handler, default_handler

log = logging.getLogger("quartapp.metrics")

JOB = "quartapp"
LOCK_FILE = "push.lock"
# The longest one push may take: under the shortest interval, so pushes never pile up.
TIMEOUT = 10.0

Handler = Callable[..., Callable[[], None]]


@dataclass
class Gateway:
    """Where to push: the URL without its credentials, and a handler that sends them."""

    url: str
    handler: Handler = field(default=default_handler)

    @classmethod
    def parse(cls, raw: str) -> Gateway:
        """``https://user:pass@host`` as a URL without them and a basic-auth handler."""
        parts = urlsplit(raw)
        if parts.username is None:
            return cls(raw)
        netloc = parts.hostname or ""
        if ":" in netloc:
            netloc = f"[{netloc}]"
        if parts.port is not None:
            netloc += f":{parts.port}"
        url = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
        username, password = unquote(parts.username), unquote(parts.password or "")

        def handler(
            url: str, method: str, timeout: float | None, headers: Any, data: bytes
        ) -> Callable[[], None]:
            return basic_auth_handler(url, method, timeout, headers, data, username, password)

        return cls(url, handler)


class Election:
    """Whether this worker is the one that pushes: it holds the folder's lock file."""

    def __init__(self, folder: str | None) -> None:
        self.folder = folder
        self.fd: int | None = None

    def won(self) -> bool:
        """Try for the lock (without waiting); True while this worker holds it.

        Without a shared folder (one process serving alone), this process is the pusher.
        """
        if self.folder is None:
            return True
        if self.fd is not None:
            return True
        fd = os.open(os.path.join(self.folder, LOCK_FILE), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self.fd = fd
        return True


class Pusher:
    """Pushes the metrics ``read()`` returns to the gateway, when elected."""

    def __init__(
        self,
        raw_url: str,
        instance: str,
        read: Callable[[], CollectorRegistry],
        folder: str | None,
    ) -> None:
        self.gateway = Gateway.parse(raw_url)
        self.grouping = {"instance": instance}
        self.read = read
        self.election = Election(folder)
        self.failing = False
        self.pushed = 0  # pushes that succeeded, for the log and the tests

    def _push(self) -> None:
        push_to_gateway(
            self.gateway.url,
            job=JOB,
            registry=self.read(),
            grouping_key=self.grouping,
            timeout=TIMEOUT,
            handler=self.gateway.handler,
        )

    async def push_once(self) -> bool:
        """Push now if elected; whether a push succeeded. A failure is logged, not raised."""
        if not self.election.won():
            return False
        try:
            await asyncio.to_thread(self._push)
        except Exception as error:  # a push must never stop the worker
            if not self.failing:
                # The URL without credentials, and the error's class and text only.
                log.warning(
                    "metrics push to %s failed: %s: %s (retrying every interval)",
                    self.gateway.url,
                    type(error).__name__,
                    error,
                )
            self.failing = True
            return False
        if self.failing:
            log.info("metrics push to %s works again", self.gateway.url)
        self.failing = False
        self.pushed += 1
        return True

    async def run(self, interval: float) -> None:
        """Push every ``interval`` seconds until cancelled."""
        while True:
            await self.push_once()
            await asyncio.sleep(interval)

    async def stop(self) -> None:
        """If this worker pushes, delete the group (at shutdown).

        The lock is kept until the process exits: the other workers, stopping too,
        must not win it and push the group back.
        """
        if self.election.fd is None and self.election.folder is not None:
            return
        with contextlib.suppress(Exception):
            await asyncio.to_thread(
                delete_from_gateway,
                self.gateway.url,
                job=JOB,
                grouping_key=self.grouping,
                timeout=TIMEOUT,
                handler=self.gateway.handler,
            )
