"""Free TCP ports on 127.0.0.1 for the test servers, safe under pytest-xdist.

Standard library only: ``bench/`` starts its PostgreSQL through ``tests/support/pg.py``, which
takes its port from here.
"""

from __future__ import annotations

import itertools
import os
import secrets
import socket
import threading
from collections.abc import Iterator

# free_port hands out ports below Linux's ephemeral range (32768-60999): there no outgoing
# connection, and no program asking the kernel for any free port, takes one between the
# probe and the server's bind. Each pytest-xdist worker (gw0, gw1...) walks a block of its
# own from a random start, so the workers of a run never hand out the same port, and two
# runs at once rarely meet.
PORT_BLOCK = 1000
FIRST_PORT = 20000
PORT_BLOCKS = 12


def _ports() -> Iterator[int]:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    index = worker.removeprefix("gw")
    block = (int(index) + 1 if worker.startswith("gw") and index.isdigit() else 0) % PORT_BLOCKS
    first = FIRST_PORT + block * PORT_BLOCK
    # From the OS, not the random module, which Hypothesis seeds in its tests.
    offset = secrets.randbelow(PORT_BLOCK)
    for step in itertools.count():
        yield first + (offset + step) % PORT_BLOCK


_PORTS = _ports()
_PORTS_LOCK = threading.Lock()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now, from this worker's block."""
    with _PORTS_LOCK:
        for _ in range(PORT_BLOCK):
            port = next(_PORTS)
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
                try:
                    probe.bind(("127.0.0.1", port))
                except OSError:
                    continue  # taken, or still in TIME_WAIT: try the next
                return port
    raise RuntimeError(f"no free port in {FIRST_PORT}-{FIRST_PORT + PORT_BLOCKS * PORT_BLOCK}")
