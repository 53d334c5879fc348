"""``python -m bench.memory``: what the Procfile's web line holds in memory, per process.

It runs the Procfile's ``web:`` line as a PaaS would (production, two workers, here on
SQLite after the ``release:`` line), signs a user in through the form, and reports the
resident memory (RSS) of the parent and of each worker, idle and after 10,000
authenticated ``GET /hello`` requests, against the targets: a parent of at most 30 MiB
and workers of at most 90 MiB, so that the line fits a 512 MB dyno with room to spare.
``make bench`` runs it after the throughput scenarios (not with ``--quick`` or\n``--scenarios``).
"""

from __future__ import annotations

import argparse
import http.client
import json
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

from bench import servers

RESULTS = Path(__file__).resolve().parent / "results" / "latest.json"
MIB = 1024 * 1024
PARENT_TARGET_MIB = 30
WORKER_TARGET_MIB = 90
REQUESTS = 10_000
# A smoke run (--quick, as the test suite runs it): enough requests that both workers
# answer some, and a short settle, since its figures are checked for being there, not read.
QUICK_REQUESTS = 400
# Clients at once; each opens a new connection now and then, so that both workers
# (which share one listening socket) get a share of the requests.
CLIENTS = 8
PER_CONNECTION = 100
WORKERS = 2
# Idle means the startup work is done: the workers have built the app and answered.
SETTLE_SECONDS = 2.0
QUICK_SETTLE_SECONDS = 0.3


@dataclass
class Processes:
    """The web line's processes: its parent, the workers and multiprocessing's helper."""

    parent: int
    workers: list[int]
    others: list[int]


def procfile_line(kind: str) -> str:
    """The Procfile's command for ``kind`` (``web`` or ``release``)."""
    for line in (servers.ROOT / "Procfile").read_text().splitlines():
        if line.startswith(f"{kind}:"):
            return line.split(":", 1)[1].strip()
    raise servers.BenchError(f"the Procfile has no {kind}: line")


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def parent_of(pid: int) -> int:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    return int(stat.rsplit(")", 1)[1].split()[1])


def processes(server: servers.Server) -> Processes:
    """The web line's processes, found from the process tree under ``server``."""
    tree = server.pids()
    (parent,) = [pid for pid in tree if "quartapp.serve" in command_line(pid)]
    children = [pid for pid in tree if parent_of(pid) == parent]
    workers = sorted(pid for pid in children if "spawn_main" in command_line(pid))
    return Processes(parent, workers, sorted(set(children) - set(workers)))


def hammer(server: servers.Server, cookies: Mapping[str, str], count: int) -> int:
    """Send ``count`` authenticated ``GET /hello``; the number not answered 200."""
    headers = {"Cookie": servers.cookie_header(cookies)}
    failures = [0] * CLIENTS

    def client(index: int) -> None:
        remaining = count // CLIENTS + (index < count % CLIENTS)
        while remaining > 0:
            connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
            try:
                for _ in range(min(PER_CONNECTION, remaining)):
                    connection.request("GET", "/hello", headers=headers)
                    response = connection.getresponse()
                    response.read()
                    failures[index] += response.status != 200
                    remaining -= 1
            except OSError:
                failures[index] += 1
                remaining -= 1
            finally:
                connection.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(failures)


def rss_mib(pid: int) -> float:
    return servers.rss_of(pid) / MIB


def measure(requests: int, folder: Path, settle: float = SETTLE_SECONDS) -> dict[str, Any]:
    """Run the web line in ``folder`` and weigh its processes; the figures.

    ``settle`` is how long it waits before each weighing, for the workers to go quiet.
    """
    env = servers.clean_env(
        QUARTAPP_TRUSTED_HOSTS='["127.0.0.1"]',
        QUARTAPP_INSTANCE_PATH=str(folder / "instance"),
        SECRET_KEY=secrets.token_urlsafe(32),
        DATABASE_URL=f"sqlite:///{folder / 'quartapp.db'}",
        WEB_CONCURRENCY=str(WORKERS),
    )
    release = subprocess.run(
        ["bash", "-c", procfile_line("release")],
        cwd=servers.ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=servers.START_TIMEOUT,
        check=False,
    )
    if release.returncode != 0:
        raise servers.BenchError(f"the release line failed:\n{release.stderr.strip()}")
    web = procfile_line("web").replace("--bind 0.0.0.0:$PORT", "--bind 127.0.0.1:{port}")
    server = servers.start("web", ["bash", "-c", web], env, folder)
    try:
        # Made while the web line starts: both need only the release's schema.
        password = servers.create_user({**env, "QUARTAPP_ENV": "production"}, servers.BENCH_USER)
        server.wait_ready("/healthz")
        deadline = time.monotonic() + servers.START_TIMEOUT
        while (
            len(processes(server).workers) < WORKERS
            or server.log_tail(1000).count("Running on") < WORKERS
        ):
            if time.monotonic() > deadline:
                raise servers.BenchError(f"{WORKERS} workers did not start:\n{server.log_tail()}")
            time.sleep(0.1)
        cookies = servers.log_in(server, servers.BENCH_USER, password)
        time.sleep(settle)
        found = processes(server)
        idle = {pid: rss_mib(pid) for pid in found.workers}
        parent_idle = rss_mib(found.parent)
        failures = hammer(server, cookies, requests)
        time.sleep(settle)
        after = {pid: rss_mib(pid) for pid in processes(server).workers}
        return {
            "requests": requests,
            "failures": failures,
            "parent_mib": round(max(parent_idle, rss_mib(found.parent)), 1),
            "helpers_mib": round(sum(rss_mib(pid) for pid in found.others), 1),
            "workers": [
                {
                    "pid": pid,
                    "idle_mib": round(idle[pid], 1),
                    "after_mib": round(after.get(pid, 0.0), 1),
                }
                for pid in found.workers
            ],
        }
    finally:
        server.stop()
        server.wait_stopped()


def targets(figures: Mapping[str, Any]) -> list[tuple[str, float, float]]:
    """(name, value, bound) of each target, all of them "at most"."""
    rows: list[tuple[str, float, float]] = [
        ("web line's parent RSS MiB", figures["parent_mib"], PARENT_TARGET_MIB)
    ]
    for number, worker in enumerate(figures["workers"], 1):
        rows.append((f"worker {number} RSS MiB, idle", worker["idle_mib"], WORKER_TARGET_MIB))
        rows.append(
            (
                f"worker {number} RSS MiB, after {figures['requests']:,} requests",
                worker["after_mib"],
                WORKER_TARGET_MIB,
            )
        )
    return rows


def print_report(figures: Mapping[str, Any]) -> None:
    """The memory rows, then the targets as PASS/MISS lines, as the main bench prints."""
    rows = [("memory (Procfile web line, 2 workers, SQLite)", "RSS MiB", "target")]
    rows.append(("parent (python -m quartapp.serve)", f"{figures['parent_mib']:.1f}", "<= 30"))
    rows.append(("multiprocessing's resource tracker", f"{figures['helpers_mib']:.1f}", ""))
    for number, worker in enumerate(figures["workers"], 1):
        rows.append((f"worker {number}, idle", f"{worker['idle_mib']:.1f}", "<= 90"))
        rows.append(
            (
                f"worker {number}, after {figures['requests']:,} authenticated /hello",
                f"{worker['after_mib']:.1f}",
                "<= 90",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    print()
    for title, cell, limit in rows:
        print(f"{title.ljust(widths[0])}  {cell.rjust(widths[1])}  {limit}".rstrip())
    print()
    for name, value, bound in targets(figures):
        verdict = "PASS" if value <= bound else "MISS"
        print(f"{verdict}  {name}: {value:.2f} <= {bound:.2f}")
    if figures["failures"]:
        print(f"warning: memory: {figures['failures']} requests were not answered 200")


def after_bench(argv: list[str]) -> int:
    """Run after ``python -m bench``'s scenarios, unless that run was a smoke run or a subset."""
    if any(arg == "--quick" or arg.startswith("--scenarios") for arg in argv):
        return 0
    return main(argv)


def main(argv: list[str] | None = None) -> int:
    """Measure and print the memory figures; 0 when measured, whatever the targets say."""
    parser = argparse.ArgumentParser(prog="python -m bench.memory", description=__doc__)
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"{QUICK_REQUESTS:,} requests instead of {REQUESTS:,}, {QUICK_SETTLE_SECONDS} s "
        f"settling instead of {SETTLE_SECONDS}",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=RESULTS,
        help="the main bench's JSON; these figures go beside it, in <name>-memory.json",
    )
    # The main bench's other options may come along (``make bench BENCH_ARGS=...``).
    args, _ = parser.parse_known_args(argv)
    with TemporaryDirectory(prefix="bench-memory-") as tmp:
        try:
            if args.quick:
                figures = measure(QUICK_REQUESTS, Path(tmp), QUICK_SETTLE_SECONDS)
            else:
                figures = measure(REQUESTS, Path(tmp))
        except servers.BenchError as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
    print_report(figures)
    output = args.output.with_name(f"{args.output.stem}-memory.json")
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"\nwrote {output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
