"""The web line's parent: hypercorn's own workers, each one replaced when it dies.

hypercorn 0.18's ``run()`` starts its workers, waits for one to exit and, when that one
exited non-zero, stops all the others and returns. A worker killed by the OOM killer
(``kill -9``) therefore took the whole dyno down, and a PaaS backs off restarting a
crashing dyno (on Heroku for up to 20 minutes). This runs the same workers the same
way (``multiprocessing`` spawn, hypercorn's worker function, the listening sockets made
once here and inherited), but:

- a worker that dies is replaced, and its exit status or signal is logged on one line;
  the other workers keep serving meanwhile;
- only workers that keep dying at start (within ``START_WINDOW`` of starting,
  ``FAILED_STARTS`` times in a row) end it, after backing off, with exit status 1;
- SIGTERM or SIGINT gives every worker hypercorn's graceful shutdown
  (``graceful_timeout``); then the status is 0;
- the workers' shutdown event is the end of a pipe only the parent holds
  (:class:`ParentGone`), not a ``multiprocessing.Event``: a parent that is killed
  outright stops its workers gracefully too, instead of leaving them serving with no
  one to replace them.

The upstream change that would remove this: ``hypercorn.run``'s loop already starts a
new worker for one that exits with status 0 (``max_requests``); starting one for any
worker that dies, with a backoff for crash loops, would make this module unneeded.

Each worker also forgets a connection as soon as its client closes it
(:func:`release_closed_connections`), where hypercorn 0.18 holds it until the
keep-alive timeout.

Nothing of the app is imported here: the parent stays small (the workers are spawned,
so they share nothing with it anyway).
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing import get_context
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    from multiprocessing.synchronize import Event

    from hypercorn.config import Config, Sockets

# A worker that dies sooner than this after starting has failed to start: the app takes
# a second or two to build, and a worker that serves has lived longer than this.
START_WINDOW = 10.0
# Failed starts in a row that end the server: a bad deploy, not a passing crash.
FAILED_STARTS = 5
# The wait before replacing a worker that failed to start, doubled at each failure in a
# row: the first replacement is prompt, a crash loop does not spin the CPU.
FIRST_BACKOFF = 0.5
MAX_BACKOFF = 8.0
# After the graceful timeout, how long to wait for a worker before killing it.
STOP_MARGIN = 5.0
# How the workers signal what hypercorn's command line offers.
WORKER_CLASSES = ("asyncio", "uvloop", "trio")
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def say(message: str) -> None:
    """One line on stderr, prefixed like the app's refusal so one grep finds both."""
    print(f"quartapp: {message}", file=sys.stderr, flush=True)


def release_closed_connections() -> None:
    """Let hypercorn forget a connection as soon as its client closes it.

    hypercorn 0.18's ``TCPServer`` arms a keep-alive timer after each response, in the
    connection's task group; when the client then closes the connection the timer is
    left running, and the task group waits for it, so every closed connection's state
    (about 12 KiB) stays for ``keep_alive_timeout`` (95 s here): a client opening a
    connection per request at 100 a second held a worker at 200 MiB more. Stopping the
    timer once the reader sees the end fixes it; an answer still in flight is not the
    timer's, and finishes as before. Upstream, ``TCPServer.run`` stopping
    ``idle_task`` after ``_read_data()`` returns would remove this.
    """
    from hypercorn.asyncio.tcp_server import TCPServer

    if getattr(TCPServer._read_data, "releases_idle_timer", False):
        return
    read_data = TCPServer._read_data

    async def _read_data(self: TCPServer) -> None:
        await read_data(self)
        await self.idle_task.stop()

    _read_data.releases_idle_timer = True  # type: ignore[attr-defined]
    TCPServer._read_data = _read_data  # type: ignore[method-assign]


class ParentGone:
    """The shutdown event hypercorn's workers poll: set once the parent's end is closed.

    The parent closes its end to stop the workers; the kernel closes it when the parent
    dies in any way. hypercorn only calls ``is_set()`` (every 0.1 s).
    """

    def __init__(self, reader: Connection) -> None:
        self.reader = reader

    def is_set(self) -> bool:
        """Whether the parent's end is closed (the pipe then reads as at its end)."""
        return self.reader.poll()


def work(config: Config, sockets: Sockets, shutdown: ParentGone) -> None:
    """A worker process: hypercorn's own worker function for ``config.worker_class``."""
    # hypercorn types the event as multiprocessing's, and calls only its is_set().
    shutdown_event = cast("Event", shutdown)
    if config.worker_class != "trio":
        release_closed_connections()
    # The parent alone decides when to stop, through the shutdown event. A terminal's
    # Ctrl-C and a PaaS's SIGTERM reach the whole process group; a worker that obeyed
    # them would drop its requests in flight instead of finishing them.
    for number in STOP_SIGNALS:
        signal.signal(number, signal.SIG_IGN)
    if config.worker_class == "trio":
        from hypercorn.trio.run import trio_worker

        trio_worker(config, sockets, shutdown_event)
    elif config.worker_class == "uvloop":
        from hypercorn.asyncio.run import uvloop_worker

        uvloop_worker(config, sockets, shutdown_event)
    else:
        from hypercorn.asyncio.run import asyncio_worker

        asyncio_worker(config, sockets, shutdown_event)


def describe(exitcode: int | None) -> str:
    """How a worker ended, from its exit code (negative: the signal that killed it)."""
    if exitcode is None:
        return "is still running"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        return f"was killed by {name}"
    return f"exited with status {exitcode}"


@dataclass
class Worker:
    """A started worker process and when it started."""

    process: BaseProcess
    started: float


# Called with the pid of each worker that ended, once it is reaped: the web line adds
# the metrics' clean-up here (serve.py), so this module names no feature.
worker_ended: list[Callable[[int], None]] = []


class Supervisor:
    """Keeps ``config.workers`` of hypercorn's workers running until told to stop."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.context = get_context("spawn")
        reader, self.stop_writer = self.context.Pipe(duplex=False)
        self.shutdown = ParentGone(reader)
        self.workers: list[Worker] = []
        self.stopping = False
        self.failed_starts = 0
        self.next_start = 0.0
        self.status = 0

    def run(self) -> int:
        """Serve until SIGTERM or SIGINT (status 0), or until workers keep failing (1)."""
        sockets = self.config.create_sockets()
        # The stop signals wake the wait below through this pipe, so none is missed
        # between two waits and no polling is needed.
        wake_read, wake_write = os.pipe()
        os.set_blocking(wake_write, False)
        previous_wakeup = signal.set_wakeup_fd(wake_write)
        previous = {number: signal.signal(number, self._stop) for number in STOP_SIGNALS}
        try:
            while not self.stopping:
                self._start_missing(sockets)
                timeout = None
                if len(self.workers) < self.config.workers:
                    timeout = max(0.0, self.next_start - time.monotonic())
                ready = wait(
                    [worker.process.sentinel for worker in self.workers] + [wake_read], timeout
                )
                if wake_read in ready:
                    os.read(wake_read, 512)
                self._reap()
            self._stop_workers()
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)
            signal.set_wakeup_fd(previous_wakeup)
            os.close(wake_read)
            os.close(wake_write)
            for sock in (
                *sockets.secure_sockets,
                *sockets.insecure_sockets,
                *sockets.quic_sockets,
            ):
                sock.close()
        return self.status

    def _stop(self, number: int, _frame: FrameType | None) -> None:
        self.stopping = True

    def _start_missing(self, sockets: Sockets) -> None:
        if time.monotonic() < self.next_start:
            return
        while len(self.workers) < self.config.workers:
            process = self.context.Process(
                target=work,
                kwargs={
                    "config": self.config,
                    "sockets": sockets,
                    "shutdown": self.shutdown,
                },
            )
            process.daemon = self.config.daemon
            process.start()
            self.workers.append(Worker(process, time.monotonic()))

    def _reap(self) -> None:
        """Log each worker that ended; count the failed starts; give up after too many."""
        now = time.monotonic()
        for worker in [worker for worker in self.workers if worker.process.exitcode is not None]:
            worker.process.join()
            self.workers.remove(worker)
            for hook in worker_ended:
                hook(worker.process.pid or 0)
            if self.stopping:
                continue
            ending = describe(worker.process.exitcode)
            lived = now - worker.started
            if worker.process.exitcode == 0 or lived >= START_WINDOW:
                self.failed_starts = 0
                say(f"worker {worker.process.pid} {ending}; starting another")
                continue
            self.failed_starts += 1
            if self.failed_starts >= FAILED_STARTS:
                say(
                    f"workers keep dying at start ({self.failed_starts} in a row, each within"
                    f" {START_WINDOW:g}s; the last {ending}); stopping"
                )
                self.stopping = True
                self.status = 1
                return
            backoff = min(FIRST_BACKOFF * 2 ** (self.failed_starts - 1), MAX_BACKOFF)
            self.next_start = now + backoff
            say(
                f"worker {worker.process.pid} {ending} {lived:.1f}s after starting;"
                f" starting another in {backoff:g}s"
            )

    def _stop_workers(self) -> None:
        """hypercorn's graceful shutdown for every worker; a kill for any that outstays it."""
        self.stop_writer.close()
        deadline = time.monotonic() + self.config.graceful_timeout + STOP_MARGIN
        for worker in self.workers:
            worker.process.join(max(0.0, deadline - time.monotonic()))
            if worker.process.exitcode is None:
                say(f"worker {worker.process.pid} did not stop in time; killing it")
                worker.process.kill()
                worker.process.join()
        self.workers.clear()


def serve(config: Config) -> int:
    """Run ``config``'s workers, each replaced when it dies; the exit status.

    This takes the place of ``hypercorn.run.run`` for the web line. What it does not
    cover (the reloader, or no worker processes at all) goes to hypercorn's own.
    """
    if config.use_reloader or config.workers == 0:
        from hypercorn.run import run

        return run(config)
    if config.worker_class not in WORKER_CLASSES:
        say(f"refusing to start: no worker class {config.worker_class!r}")
        return 1
    if config.pid_path is not None:
        Path(config.pid_path).write_text(str(os.getpid()))
    return Supervisor(config).run()
