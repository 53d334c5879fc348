"""The hashing threads: below the event loop's priority, as many as the usable cores."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from quartapp.auth import hashing
from tests.auth.test_passwords import CONFIG, build
from tests.conftest import PASSWORD
from tests.support.settings import auth as auth_settings
from tests.support.settings import load

pytestmark = pytest.mark.skipif(not hasattr(os, "setpriority"), reason="Linux thread priority")


def nice_in_stat(thread: int) -> int:
    """The thread's nice value as the kernel reports it (/proc/<pid>/task/<tid>/stat)."""
    stat = Path(f"/proc/self/task/{thread}/stat").read_text()
    # Field 19 is the nice value; the command name before it, in parentheses, may hold spaces.
    return int(stat.rsplit(")", 1)[1].split()[16])


def affinity() -> int:
    return len(os.sched_getaffinity(0))


@pytest.mark.parametrize("configured", [None, 5, 0])
async def test_hashes_run_at_nice_10_and_the_loop_does_not(configured: int | None) -> None:
    config = CONFIG if configured is None else {**CONFIG, "HASHING_NICE": configured}
    wanted = hashing.HASHING_NICE if configured is None else configured
    service = build(config)
    loop_thread = threading.get_native_id()
    loop_nice = os.getpriority(os.PRIO_PROCESS, loop_thread)

    def where() -> tuple[int, int, int, str]:
        thread = threading.get_native_id()
        nice = os.getpriority(os.PRIO_PROCESS, thread)
        return thread, nice, nice_in_stat(thread), threading.current_thread().name

    try:
        thread, nice, kernel_nice, name = await service._bounded(where)
        # A real hash and verify go through the same threads.
        stored = await service.hash(PASSWORD)
        assert (await service.verify(stored, PASSWORD)).ok
    finally:
        service.close()

    assert thread != loop_thread
    assert name.startswith("quartapp-hashing")
    assert nice == max(loop_nice, wanted)  # never below the process's own
    assert kernel_nice == nice
    assert os.getpriority(os.PRIO_PROCESS, loop_thread) == loop_nice
    assert nice_in_stat(loop_thread) == loop_nice


async def test_a_closed_service_still_hashes_when_served_again() -> None:
    service = build(CONFIG)
    stored = await service.hash(PASSWORD)
    service.close()
    try:
        assert (await service.verify(stored, PASSWORD)).ok
    finally:
        service.close()


async def test_the_pool_has_as_many_threads_as_hashing_slots() -> None:
    service = build({**CONFIG, "HASHING_CONCURRENCY": 3})
    try:
        assert service.pool is not None
        assert service.pool._max_workers == service.slots == 3
    finally:
        service.close()


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.mark.parametrize(
    ("cpu_max", "cores"),
    [
        ("max 100000\n", None),  # no quota: the affinity
        ("50000 100000\n", 1),  # half a core is one thread
        ("100000 100000\n", 1),
        ("150000 100000\n", 2),  # rounded up
        ("10000000 100000\n", None),  # a quota above the affinity: the affinity
        ("garbage\n", None),
    ],
)
def test_cores_follow_the_cgroup_v2_quota(tmp_path: Path, cpu_max: str, cores: int | None) -> None:
    membership = tmp_path / "cgroup"
    write(membership, "0::/\n")
    write(tmp_path / "fs" / "cpu.max", cpu_max)
    expected = affinity() if cores is None else min(cores, affinity())
    assert hashing.usable_cores(tmp_path / "fs", membership) == expected


def test_a_quota_above_the_process_group_counts(tmp_path: Path) -> None:
    membership = tmp_path / "cgroup"
    write(membership, "0::/dyno/web.1\n")
    write(tmp_path / "fs" / "dyno" / "cpu.max", "100000 100000\n")
    write(tmp_path / "fs" / "dyno" / "web.1" / "cpu.max", "max 100000\n")
    assert hashing.usable_cores(tmp_path / "fs", membership) == 1


def test_cores_follow_the_cgroup_v1_quota(tmp_path: Path) -> None:
    membership = tmp_path / "cgroup"
    write(membership, "4:memory:/x\n3:cpu,cpuacct:/docker/abc\n0::/\n")
    group = tmp_path / "fs" / "cpu" / "docker" / "abc"
    write(group / "cpu.cfs_quota_us", "100000\n")
    write(group / "cpu.cfs_period_us", "100000\n")
    write(tmp_path / "fs" / "cpu" / "cpu.cfs_quota_us", "-1\n")
    write(tmp_path / "fs" / "cpu" / "cpu.cfs_period_us", "100000\n")
    assert hashing.usable_cores(tmp_path / "fs", membership) == 1


def test_without_cgroup_files_the_affinity_counts(tmp_path: Path) -> None:
    assert hashing.usable_cores(tmp_path, tmp_path / "missing") == affinity()
    write(tmp_path / "cgroup", "not a cgroup line\n")
    assert hashing.usable_cores(tmp_path, tmp_path / "cgroup") == affinity()


def test_unset_concurrency_is_the_usable_cores_at_most_four() -> None:
    expected = min(hashing.usable_cores(), hashing.MOST_HASHES)
    assert hashing.default_concurrency() == expected
    assert load()["HASHING_CONCURRENCY"] == expected
    assert auth_settings().hashing_concurrency == expected


def test_a_set_concurrency_is_kept() -> None:
    assert load(HASHING_CONCURRENCY=7)["HASHING_CONCURRENCY"] == 7
