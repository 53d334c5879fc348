"""Where the password hashes run: threads at a lower priority, as many as the cores allow.

argon2 releases the GIL, so a hash in a thread does not stop the event loop; but two
hashes at once on a two-core machine take both cores, and the loop then waits for the
kernel's scheduler like any other thread. The hashing threads run at
``HASHING_NICE`` (10 by default; Linux gives each thread its own nice value), so whenever the loop
has work the scheduler gives it the core first: pages keep being served during a burst
of logins, and the hashes use whatever the loop leaves, which on an idle worker is all
of it, so a login alone is as fast as before.

``HASHING_CONCURRENCY``, when it is not set, is the number of cores this process may
really use (:func:`usable_cores`: its CPU affinity and its cgroup's ``cpu.max`` quota,
as a container or a PaaS dyno sets them), at most :data:`MOST_HASHES`, since each hash
also holds ``ARGON2_MEMORY_COST`` of memory.

Standard library only: the settings loader reads :func:`usable_cores`.
"""

from __future__ import annotations

import logging
import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

# HASHING_NICE's default, above the loop's 0: the scheduler's weight for nice 10 is about
# a tenth of nice 0's, so a busy loop thread gets most of a shared core, and the hashes
# get the rest. Not 19: on a machine where other work is also busy, logins must finish.
HASHING_NICE = 10
# The most hashes at once when HASHING_CONCURRENCY is unset, whatever the core count:
# each holds ARGON2_MEMORY_COST (32 MiB by default).
MOST_HASHES = 4
CGROUP_ROOT = Path("/sys/fs/cgroup")
MEMBERSHIP = Path("/proc/self/cgroup")

log = logging.getLogger("quartapp.auth")


def usable_cores(root: Path = CGROUP_ROOT, membership: Path = MEMBERSHIP) -> int:
    """The cores this process may run on at once: its affinity, cut by any cgroup quota.

    The quota is read for the process's own cgroup and each group above it, up to
    ``root``: cgroup v2's ``cpu.max`` (``"<quota> <period>"``, or ``"max <period>"``), or
    cgroup v1's ``cpu.cfs_quota_us`` and ``cpu.cfs_period_us`` (-1: no quota) under
    ``root/cpu``. The smallest counts, rounded up to whole cores.
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cores = os.cpu_count() or 1
    try:
        lines = membership.read_text().splitlines()
    except OSError:
        lines = []
    for quota in _quotas(root, lines):
        cores = min(cores, max(1, math.ceil(quota)))
    return max(1, cores)


def _quotas(root: Path, lines: list[str]) -> list[float]:
    """The quotas, in cores, of the groups named in ``/proc/self/cgroup``'s ``lines``."""
    quotas = []
    for line in lines:
        fields = line.split(":", 2)
        if len(fields) != 3:
            continue
        controllers, path = fields[1], fields[2]
        if controllers == "":  # v2: one hierarchy, "0::<path>"
            quotas += [q for g in _ancestors(root, path) if (q := _v2(g / "cpu.max"))]
        elif "cpu" in controllers.split(","):  # v1: the cpu controller's own hierarchy
            folder = root / "cpu"
            if not folder.is_dir():
                folder = root / controllers
            quotas += [q for g in _ancestors(folder, path) if (q := _v1(g))]
    return quotas


def _ancestors(root: Path, path: str) -> list[Path]:
    """``root``, then each folder down to the group at ``path`` below it."""
    folders = [root]
    for part in Path(path.lstrip("/")).parts:
        if part == "..":  # a group outside this namespace's view: only the root is seen
            continue
        folders.append(folders[-1] / part)
    return folders


def _v2(cpu_max: Path) -> float | None:
    """Cores allowed by a ``cpu.max`` file; None without a file or a limit."""
    try:
        quota, period = cpu_max.read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError, ZeroDivisionError):
        return None


def _v1(group: Path) -> float | None:
    """Cores allowed by a v1 group's CFS quota; None without files or a limit (-1)."""
    try:
        quota = int((group / "cpu.cfs_quota_us").read_text())
        period = int((group / "cpu.cfs_period_us").read_text())
        return None if quota <= 0 else quota / period
    except (OSError, ValueError, ZeroDivisionError):
        return None


def default_concurrency() -> int:
    """``HASHING_CONCURRENCY`` when unset: the usable cores, at most :data:`MOST_HASHES`."""
    return min(usable_cores(), MOST_HASHES)


def lower_priority(nice: int = HASHING_NICE) -> None:
    """Run the calling thread at ``nice`` (the executor's initializer).

    On Linux ``PRIO_PROCESS`` with a thread id sets that thread alone. Raising one's own
    nice value needs no privilege; where it is refused, hashing still works, at the
    loop's priority, and the log says so.
    """
    if not hasattr(os, "setpriority"):
        return
    try:
        thread = threading.get_native_id()
        # Never lower than it is: a worker started under nice keeps its hashes below it.
        os.setpriority(os.PRIO_PROCESS, thread, max(os.getpriority(os.PRIO_PROCESS, thread), nice))
    except OSError as error:
        log.warning("hashing threads run at the loop's priority: %s", error)


def executor(threads: int, nice: int = HASHING_NICE) -> ThreadPoolExecutor:
    """A pool of ``threads`` hashing threads, each at ``nice`` (at least the process's)."""
    return ThreadPoolExecutor(
        max_workers=threads,
        thread_name_prefix="quartapp-hashing",
        initializer=lower_priority,
        initargs=(nice,),
    )
