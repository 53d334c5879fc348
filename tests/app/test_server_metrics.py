"""``/metrics`` under the Procfile's web line with two workers: counts add up over both.

Each hypercorn worker writes its own values into the run's ``PROMETHEUS_MULTIPROC_DIR``
(made by ``python -m quartapp.serve``); whichever worker answers a scrape sums them
all. The test logs in concurrently until both workers have counted logins, reads each
worker's own file, and checks that every scrape shows the sum. Without ``DYNO`` (the
server here has none), a scrape names the address and port it reached as the
``instance``, and shows each worker's own process figures (several dynos' are in
test_server_metrics_push.py).
"""

from __future__ import annotations

import http.client
import secrets
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import PASSWORD
from tests.support.server import (
    REQUEST_TIMEOUT,
    Browser,
    Launcher,
    Server,
    database_url,
    server_env,
)

pytestmark = pytest.mark.server

TOKEN = secrets.token_urlsafe(32)
ROUNDS = 6


def get_metrics(server: Server, authorization: str | None) -> tuple[int, str]:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=REQUEST_TIMEOUT)
    try:
        headers = {} if authorization is None else {"Authorization": authorization}
        connection.request("GET", "/metrics", headers=headers)
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


def login_counts(text: str) -> dict[str, float]:
    """``quartapp_logins_total`` by result, from a scrape or a collector's output."""
    return {
        sample.labels["result"]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "quartapp_logins_total"
    }


def pids(text: str, name: str) -> dict[str, float]:
    """``name``'s value by ``pid`` in a scrape."""
    return {
        sample.labels["pid"]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    }


def per_worker(folder: Path, scratch: Path) -> dict[str, dict[str, float]]:
    """Each worker's own login counts, read from its file alone."""
    counts = {}
    for file in sorted(folder.glob("counter_*.db")):
        alone = scratch / file.stem
        alone.mkdir(parents=True, exist_ok=True)
        shutil.copy(file, alone / file.name)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(alone))
        samples = {
            sample.labels["result"]: sample.value
            for metric in registry.collect()
            for sample in metric.samples
            if sample.name == "quartapp_logins_total"
        }
        counts[file.stem.removeprefix("counter_")] = samples
    return counts


def log_in(server: Server, username: str, password: str) -> int:
    browser = Browser(server.base_url)
    token = browser.csrf_token("/login")
    form = {"username": username, "password": password, "csrf_token": token}
    return browser.post("/login", form).status


def test_metrics_add_up_over_two_workers_need_the_token_and_name_the_address(
    tmp_path: Path, served_sqlite_template: Path
) -> None:
    base = tmp_path / "metrics"
    base.mkdir()
    env = server_env(
        tmp_path / "instance",
        SECRET_KEY=secrets.token_urlsafe(32),
        QUARTAPP_TRUSTED_HOSTS='["127.0.0.1"]',
        QUARTAPP_SESSION_COOKIE_SECURE="false",
        QUARTAPP_METRICS_TOKEN=TOKEN,
        # Eight logins at once from one address: more than the address's fair share of
        # the hashing line (2), which would turn some away with 503. This test is
        # about counting, so the share is the whole line.
        QUARTAPP_HASHING_PLACES_PER_CLIENT="10",
        DATABASE_URL=database_url(tmp_path),
    )
    # A migrated database holding alice (PASSWORD), as the release step and `users create`
    # leave it (test_server.py and test_cli.py run those).
    shutil.copyfile(served_sqlite_template, tmp_path / "quartapp.db")
    # Set, the variable names the folder in which the web line makes the run's own.
    web_env = {**env, "PROMETHEUS_MULTIPROC_DIR": str(base)}

    with Launcher(tmp_path) as launch:
        server = launch.web(web_env, workers=2)
        (folder,) = [path for path in base.iterdir() if path.is_dir()]
        assert folder.name.startswith("quartapp-metrics-")

        assert get_metrics(server, None)[0] == 404
        assert get_metrics(server, f"Bearer {TOKEN[:-1]}")[0] == 404
        assert get_metrics(server, f"Basic {TOKEN}")[0] == 404

        expected = {"success": 0, "failure": 0}
        attempt = 0
        with ThreadPoolExecutor(4) as pool:
            for _ in range(ROUNDS):
                jobs = []
                for _ in range(4):
                    attempt += 1
                    jobs.append(pool.submit(log_in, server, "alice", PASSWORD))
                    jobs.append(pool.submit(log_in, server, f"nobody-{attempt}", "wrong, long"))
                statuses = [job.result() for job in jobs]
                assert statuses.count(302) == 4
                assert statuses.count(200) == 4
                expected["success"] += 4
                expected["failure"] += 4
                workers = per_worker(folder, tmp_path / "scratch")
                if (
                    sum(1 for c in workers.values() if c.get("success", 0) + c.get("failure", 0))
                    > 1
                ):
                    break

        counted = {pid: c for pid, c in workers.items() if c.get("success", 0) + c["failure"]}
        assert len(counted) == 2, f"one worker served every login: {workers}"
        for result in ("success", "failure"):
            assert sum(c.get(result, 0) for c in counted.values()) == expected[result]
        # Whichever worker answers, a scrape shows the sum over both.
        for _ in range(6):
            status, text = get_metrics(server, f"Bearer {TOKEN}")
            assert status == 200
            scraped = login_counts(text)
            assert scraped["success"] == expected["success"]
            assert scraped["failure"] == expected["failure"]
            assert scraped["throttled"] == 0
            assert scraped["queue_full"] == 0
            assert "quartapp_request_duration_seconds_bucket" in text
            assert "quartapp_hashing_queue_depth" in text
        assert TOKEN not in server.stdout + server.stderr

        # Without DYNO the instance is the address the scrape reached, and every worker
        # shows: each refreshes its figures every few seconds, so both do within that.
        deadline = time.monotonic() + 15
        while len(pids(text, "process_resident_memory_bytes")) < 2:
            assert time.monotonic() < deadline, text
            time.sleep(0.5)
            status, text = get_metrics(server, f"Bearer {TOKEN}")
            assert status == 200
        instances = {
            sample.labels["instance"]
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }
        assert instances == {f"127.0.0.1:{server.port}"}
        memory = pids(text, "process_resident_memory_bytes")
        assert all(value > 10_000_000 for value in memory.values()), memory
        started = pids(text, "process_start_time_seconds")
        assert all(abs(value - time.time()) < 600 for value in started.values()), started
        assert set(pids(text, "process_cpu_seconds_total")) == set(memory)
        assert set(pids(text, "process_open_fds")) == set(memory)

    # The run's folder goes with the run.
    deadline = time.monotonic() + 5
    while folder.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not folder.exists()
