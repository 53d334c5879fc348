"""The benchmark's smoke tests: ``python -m bench --quick`` runs and measures something,
on SQLite and on PostgreSQL behind the delay proxy, and the proxy does what it says.
One quick run of every scenario checked here serves all of this module's bench tests.

No throughput is asserted: the bench reports figures, it does not judge them here. The
proxy's tests check its delay is there and that chunks in flight overlap.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bench import many, pg

ROOT = Path(__file__).resolve().parents[2]
BENCH_PACKAGES = ("flask_login", "flask_sqlalchemy", "flask_wtf", "gunicorn")


@dataclass
class QuickRun:
    """One ``python -m bench --quick`` run: its exit, its output and its JSON report."""

    result: subprocess.CompletedProcess[str]
    report: dict[str, Any]
    # Why the PostgreSQL scenarios were left out, or None when they ran.
    no_postgres: str | None


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> QuickRun:
    """The quick bench of /hello, PostgreSQL and many users, run once for this module's tests.

    One run with every scenario the tests check starts PostgreSQL and each app once; run
    apart, each scenario started its own cluster and servers (a run is mostly start-up).
    """
    bench_or_skip()
    why = pg.unavailable()
    scenarios = "hello" if why else "hello,pg,many"
    output = tmp_path_factory.mktemp("bench") / "latest.json"
    command = ["--quick", "--scenarios", scenarios, "--users", "2", "--output", str(output)]

    result = subprocess.run(
        [sys.executable, "-m", "bench", *command],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    return QuickRun(result, json.loads(output.read_text()), why)


@pytest.mark.server
def test_quick_bench_measures_quartapp_and_the_flask_tutorial(quick_run: QuickRun) -> None:
    apps = quick_run.report["scenarios"]["hello"]["apps"]
    for app in ("quartapp", "flask-tutorial"):
        assert apps[app]["rps"] > 0, (app, apps[app])
        assert apps[app]["errors"] == 0, (app, apps[app])
    assert "authenticated /hello" in quick_run.result.stdout


def bench_or_skip() -> None:
    """Skip, saying what to install, when the bench cannot run here."""
    if shutil.which("wrk") is None:
        pytest.skip("wrk is not installed: apt-get install wrk")
    missing = [name for name in BENCH_PACKAGES if importlib.util.find_spec(name) is None]
    if missing:
        pytest.skip(f"the bench group is not installed ({', '.join(missing)}): make install-bench")


def with_postgres(run: QuickRun) -> QuickRun:
    """The run, for a test of a PostgreSQL scenario: skip it when those could not run."""
    if run.no_postgres is not None:
        pytest.skip(run.no_postgres)
    return run


@pytest.mark.server
@pytest.mark.postgres
def test_quick_bench_measures_the_postgresql_scenario(quick_run: QuickRun) -> None:
    run = with_postgres(quick_run)
    report = run.report
    for delay in pg.DELAYS_MS:
        apps = report["scenarios"][pg.scenario(delay)]["apps"]
        assert sorted(apps) == sorted(pg.APPS)
        for app, figures in apps.items():
            assert figures["rps"] > 0, (delay, app, figures)
            assert figures["errors"] == 0, (delay, app, figures)
        assert pg.title(delay) in run.result.stdout
    targets = {item["name"] for item in report["targets"]}
    assert f"PostgreSQL +1 ms, /hello: {pg.QUARTAPP_PG} / {pg.FLASK_GTHREAD}" in targets
    assert f"PostgreSQL +0 ms, /hello: {pg.QUARTAPP_PG} / {pg.FLASK_SYNC}" in targets
    assert f"PostgreSQL +1 ms, /hello: {pg.QUARTAPP_PG} p99 / p50" in targets


@pytest.mark.server
@pytest.mark.postgres
def test_quick_bench_measures_many_users_each_with_its_own_cookie(quick_run: QuickRun) -> None:
    run = with_postgres(quick_run)
    report = run.report
    expected = {
        many.scenario(None): ["quartapp", "flask-login-sqlalchemy"],
        **{many.scenario(delay): list(pg.APPS) for delay in pg.DELAYS_MS},
    }
    for name, apps in expected.items():
        measured = report["scenarios"][name]["apps"]
        assert sorted(measured) == sorted(apps)
        for app, figures in measured.items():
            # Every request had a 200: each of the cookies wrk rotated through is live.
            assert figures["rps"] > 0, (name, app, figures)
            assert figures["errors"] == 0, (name, app, figures)
    assert sorted(report["settings"]["many_users"]["sign_in_seconds"]) == sorted(
        ["quartapp", "flask-login-sqlalchemy", *pg.APPS]
    )
    targets = {item["name"] for item in report["targets"]}
    assert f"{many.title(None)}: quartapp / flask-login-sqlalchemy" in targets
    assert f"{many.title(1)}: {pg.QUARTAPP_PG} / {pg.FLASK_GTHREAD}" in targets
    assert "many users: 2 signed in through each app's form" in run.result.stdout


def test_the_many_users_seed_copies_one_account_under_new_names(tmp_path: Path) -> None:
    path = tmp_path / "users.db"
    connection = sqlite3.connect(path)
    connection.execute(
        "CREATE TABLE users (id INTEGER PRIMARY KEY, username TEXT UNIQUE, password_hash TEXT)"
    )
    connection.execute("INSERT INTO users (username, password_hash) VALUES ('admin', 'h')")
    connection.commit()
    connection.close()

    many.seed_sqlite(path, "admin", created_at=False, count=3)

    connection = sqlite3.connect(path)
    rows = connection.execute("SELECT username, password_hash FROM users ORDER BY id").fetchall()
    connection.close()
    assert rows == [("admin", "h"), *((name, "h") for name in many.usernames(3))]


# The delay proxy, against an echo server in this process.

DELAY_MS = 50


@asynccontextmanager
async def echo_behind_proxy(tmp_path: Path) -> AsyncIterator[tuple[int, pg.Proxy]]:
    """An echo server on 127.0.0.1 and a delay proxy in front of it: its port and control."""

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    upstream = server.sockets[0].getsockname()[1]
    proxy = await asyncio.to_thread(pg.Proxy, upstream, 1, tmp_path)
    try:
        yield proxy.ports[0], proxy
    finally:
        await asyncio.to_thread(proxy.stop)
        server.close()
        await server.wait_closed()


async def test_proxy_forwards_everything_in_order_both_ways(tmp_path: Path) -> None:
    async with echo_behind_proxy(tmp_path) as (port, proxy):
        for delay in (0, 5):
            await asyncio.to_thread(proxy.set_delay, delay)
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            sent = b"".join(b"%06d," % number for number in range(50_000))  # 350 kB
            writer.write(sent)
            await writer.drain()
            writer.write_eof()
            received = await asyncio.wait_for(reader.read(), 30)
            writer.close()
            assert received == sent, delay


async def test_proxy_delays_each_way_and_overlaps_chunks_in_flight(tmp_path: Path) -> None:
    async with echo_behind_proxy(tmp_path) as (port, proxy):
        await asyncio.to_thread(proxy.set_delay, DELAY_MS)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        messages = 10
        started = time.monotonic()
        sent_at = []
        for number in range(messages):
            sent_at.append(time.monotonic())
            writer.write(b"%02d" % number)
            await writer.drain()
            await asyncio.sleep(0.01)  # separate chunks, not one coalesced write
        received = b""
        round_trips = []
        while len(received) < 2 * messages:
            received += await asyncio.wait_for(reader.read(2), 30)
            round_trips.append(time.monotonic() - sent_at[len(received) // 2 - 1])
        elapsed = time.monotonic() - started
        writer.close()

    assert received == b"".join(b"%02d" % n for n in range(messages))
    # Every byte was held DELAY_MS on the way there and again on the way back ...
    assert min(round_trips) >= 2 * DELAY_MS / 1000
    # ... but the delays overlapped: a proxy that held each chunk in turn would take at
    # least messages x DELAY_MS each way (1 s); overlapped, it is about 0.2 s.
    assert elapsed < messages * DELAY_MS / 1000


@pytest.mark.server
def test_memory_bench_weighs_the_web_lines_parent_and_each_worker(tmp_path: Path) -> None:
    output = tmp_path / "latest.json"

    result = subprocess.run(
        [sys.executable, "-m", "bench.memory", "--quick", "--output", str(output)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    figures = json.loads((tmp_path / "latest-memory.json").read_text())
    assert figures["failures"] == 0
    assert figures["parent_mib"] > 0
    assert len(figures["workers"]) == 2
    for worker in figures["workers"]:
        assert worker["idle_mib"] > 0
        assert worker["after_mib"] > 0
    assert "parent (python -m quartapp.serve)" in result.stdout
