"""``quart --app quartapp mail worker`` as real processes: several share the outbox on
PostgreSQL with no double send, a worker killed in the middle of a delivery loses
nothing, and SIGTERM stops one cleanly.

Messages are counted where they land, at the SMTP sink, by Message-ID.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest
from quart import Quart

from quartapp.db import db
from quartapp.mail import current, outbox
from tests.conftest import POSTGRES_ONLY, TEST_CSRF_KEY, TEST_SECRET_KEY, aquery
from tests.support.server import ROOT, server_env
from tests.support.smtp import RunningSink, smtp_sink

pytestmark = pytest.mark.server
MESSAGES = 100


@pytest.fixture
def running() -> Iterator[RunningSink]:
    with smtp_sink() as started:
        yield started


@pytest.fixture
def settings(settings: dict[str, Any], running: RunningSink) -> dict[str, Any]:
    """The test's app only writes the outbox: the workers send it."""
    settings.update(
        MAIL_URL=f"smtp://127.0.0.1:{running.port}",
        MAIL_SENDER_IN_WEB=False,
        BASE_URL="https://app.example.com",
    )
    return settings


def worker_env(settings: dict[str, Any], tmp_path: Path, **extra: str) -> dict[str, str]:
    """A worker's environment: the test app's database, keys and mail settings."""
    values = {
        "QUARTAPP_ENV": "development",
        "DATABASE_URL": settings["DATABASE_URL"],
        "SECRET_KEY": TEST_SECRET_KEY,
        "QUARTAPP_WTF_CSRF_SECRET_KEY": TEST_CSRF_KEY,
        "QUARTAPP_DATABASE_AUTO_UPGRADE": "false",
        "QUARTAPP_INITIAL_ADMIN": "false",
        "QUARTAPP_MAIL_URL": settings["MAIL_URL"],
        "QUARTAPP_BASE_URL": settings["BASE_URL"],
    }
    return server_env(tmp_path / "worker-instance", **{**values, **extra})


@contextmanager
def worker(env: dict[str, str], logs: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``quart --app quartapp mail worker``, its stderr in ``logs``; killed if left running."""
    with logs.open("wb") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "quart", "--app", "quartapp", "mail", "worker"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)


async def stop(process: subprocess.Popen[bytes]) -> int:
    """SIGTERM, then the exit status."""
    process.send_signal(signal.SIGTERM)
    return await asyncio.to_thread(process.wait, 30)


async def enqueue(app: Quart, count: int) -> None:
    async with app.app_context(), db.session() as session:
        for number in range(count):
            await outbox.enqueue(
                session,
                current(),
                kind="test",
                to=f"user{number}@example.com",
                subject=f"Message {number}",
                template="test",
            )
        await session.commit()


@POSTGRES_ONLY
async def test_two_workers_drain_the_outbox_without_a_double_send(
    app: Quart, running: RunningSink, settings: dict[str, Any], tmp_path: Path
) -> None:
    await enqueue(app, MESSAGES)
    # A relay slow enough that one worker cannot drain it all before the other starts.
    running.sink.delay = 0.05
    env = worker_env(settings, tmp_path)
    with ExitStack() as stack:
        workers = [stack.enter_context(worker(env, tmp_path / f"w{n}.log")) for n in (1, 2)]
        await running.sink.wait_for(MESSAGES, seconds=120)
        statuses = [await stop(process) for process in workers]

    assert statuses == [0, 0]
    sent_by = [
        sum(line.endswith(" sent") for line in (tmp_path / f"w{n}.log").read_text().splitlines())
        for n in (1, 2)
    ]
    assert sum(sent_by) == MESSAGES
    assert min(sent_by) > 0, f"one worker did all the work: {sent_by}"
    per_id = Counter(running.sink.message_ids())
    assert len(per_id) == MESSAGES
    assert set(per_id.values()) == {1}
    assert await aquery(settings, "SELECT count(*) FROM mail_outbox WHERE sent_at IS NULL") == [
        (0,)
    ]


@POSTGRES_ONLY
async def test_a_worker_killed_while_sending_loses_nothing(
    app: Quart, running: RunningSink, settings: dict[str, Any], tmp_path: Path
) -> None:
    await enqueue(app, 1)
    running.sink.stall = True
    # A long step timeout: the first worker is killed while waiting, not timed out.
    slow = worker_env(settings, tmp_path, QUARTAPP_MAIL_TIMEOUT="30")
    with worker(slow, tmp_path / "killed.log") as first:
        assert await asyncio.to_thread(running.sink.data_started.wait, 60)
        first.kill()
        await asyncio.to_thread(first.wait, 30)
    ((attempts, claimed_until, sent_at),) = await aquery(
        settings, "SELECT attempts, claimed_until, sent_at FROM mail_outbox"
    )
    assert (attempts, sent_at) == (1, None)
    assert claimed_until > time.time()
    running.sink.stall = False
    running.sink.release.set()

    # The lease runs out (here at once, rather than in three minutes).
    await aquery(settings, f"UPDATE mail_outbox SET claimed_until = {time.time() - 1}")
    with worker(worker_env(settings, tmp_path), tmp_path / "second.log") as second:
        (received,) = await running.sink.wait_for(1, seconds=60)
        assert await stop(second) == 0

    assert received.recipients == ["user0@example.com"]
    ((attempts, sent_at),) = await aquery(settings, "SELECT attempts, sent_at FROM mail_outbox")
    assert attempts == 2
    assert sent_at is not None


async def test_sigterm_stops_a_worker_cleanly(
    app: Quart, running: RunningSink, settings: dict[str, Any], tmp_path: Path
) -> None:
    await enqueue(app, 1)
    with worker(worker_env(settings, tmp_path), tmp_path / "worker.log") as process:
        await running.sink.wait_for(1, seconds=60)
        status = await stop(process)

    log = (tmp_path / "worker.log").read_text()
    assert status == 0
    assert "mail worker: stopped" in log
    assert "Traceback" not in log


def test_a_worker_refuses_bad_settings_in_one_line(
    settings: dict[str, Any], tmp_path: Path
) -> None:
    env = worker_env(settings, tmp_path, QUARTAPP_MAIL_URL="http://mail.example.com")

    done = subprocess.run(
        [sys.executable, "-m", "quart", "--app", "quartapp", "mail", "worker"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 1
    assert done.stderr.startswith("Error: MAIL_URL must start with")
    assert done.stderr.count("\n") == 1
