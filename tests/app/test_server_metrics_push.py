"""Metrics of several instances, served by real hypercorn and read by a real Prometheus.

Two dynos are two Procfile web lines with two workers each, with ``DYNO`` set to
``web.1`` and ``web.2`` and ``METRICS_PUSH_URL`` naming a real Pushgateway, which a real
Prometheus scrapes (tests/support/prometheus.py). After logins on each, Prometheus
shows each dyno's counts under its own ``instance``, and each worker's process
figures; Prometheus reads the Pushgateway with the deploy page's configuration, as
printed, and ``promtool`` checks every configuration the page prints. (Without ``DYNO``,
a scrape of ``/metrics`` names the address and port it reached: test_server_metrics.py
checks that on its own web line.)
"""

from __future__ import annotations

import re
import secrets
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PASSWORD
from tests.support.prometheus import (
    SCRAPE_INTERVAL,
    check_config,
    prometheus,
    pushgateway,
)
from tests.support.server import (
    ROOT,
    Browser,
    Launcher,
    Server,
    database_url,
    server_env,
)

pytestmark = pytest.mark.server

TOKEN = secrets.token_urlsafe(32)


SECTION = "### Metrics on several dynos"
YAML_BLOCK = re.compile(r"^```yaml\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def scrape_configs() -> list[str]:
    """The Prometheus configurations that the deploy page's section prints."""
    page = (ROOT / "docs" / "deploy.md").read_text()
    start = page.index(SECTION + "\n")
    end = page.index("\n## ", start)
    return YAML_BLOCK.findall(page[start:end])


def test_every_printed_scrape_configuration_is_valid(tmp_path: Path) -> None:
    blocks = scrape_configs()
    assert len(blocks) == 3
    for block in blocks:
        result = check_config(block, tmp_path)
        if "kubernetes_sd_configs" in result.stdout + result.stderr:
            # Debian builds Prometheus without Kubernetes discovery: check the rest.
            block = block.replace(
                "kubernetes_sd_configs: [{role: pod}]", "static_configs: [{targets: ['pod:8000']}]"
            )
            result = check_config(block, tmp_path)
        assert result.returncode == 0, result.stdout + result.stderr


def web_env(tmp_path: Path, **settings: str) -> dict[str, str]:
    """The Procfile's environment for a dyno, on the shared database."""
    return server_env(
        tmp_path / "instance",
        SECRET_KEY="metrics-test-" + "k" * 40,
        QUARTAPP_TRUSTED_HOSTS='["127.0.0.1"]',
        QUARTAPP_SESSION_COOKIE_SECURE="false",
        QUARTAPP_METRICS_TOKEN=TOKEN,
        DATABASE_URL=database_url(tmp_path),
        **settings,
    )


def prepare(tmp_path: Path, template: Path) -> None:
    """The database the test's dynos share: migrated and holding alice (PASSWORD), as the
    release step and `users create` leave it (test_server.py and test_cli.py run those)."""
    shutil.copyfile(template, tmp_path / "quartapp.db")


def log_in(server: Server, password: str = PASSWORD) -> int:
    browser = Browser(server.base_url)
    token = browser.csrf_token("/login")
    form = {"username": "alice", "password": password, "csrf_token": token}
    return browser.post("/login", form).status


def serve(launch: Launcher, tmp_path: Path, wait: bool = True, **settings: str) -> Server:
    """A dyno: the Procfile's web line with two workers."""
    return launch.web(web_env(tmp_path, **settings), workers=2, wait=wait)


def test_two_dynos_push_and_prometheus_tells_them_apart(
    tmp_path: Path, launch: Launcher, served_sqlite_template: Path
) -> None:
    prepare(tmp_path, served_sqlite_template)
    stack = launch.stack
    gateway = stack.enter_context(pushgateway(tmp_path / "pushgateway"))
    # The deploy page's scrape configuration, as printed, but for the gateway's address
    # and a scrape every second.
    (printed,) = [block for block in scrape_configs() if "job_name: pushgateway" in block]
    config = printed.replace("push.example.com:9091", f"127.0.0.1:{gateway.port}")
    assert config != printed
    config = f"global: {{scrape_interval: {SCRAPE_INTERVAL}}}\n" + config
    reader = stack.enter_context(prometheus(tmp_path / "prometheus", config))
    push = {"QUARTAPP_METRICS_PUSH_URL": gateway.url, "QUARTAPP_METRICS_PUSH_INTERVAL": "1"}
    # Both dynos start at once, as a deploy starts them.
    one = serve(launch, tmp_path, wait=False, DYNO="web.1", **push)
    two = serve(launch, tmp_path, wait=False, DYNO="web.2", **push)
    for dyno in (one, two):
        dyno.wait_serving(workers=2)

    for _ in range(3):
        assert log_in(one) == 302
    for _ in range(2):
        assert log_in(two) == 302
    assert log_in(two, "a wrong password, long enough") == 200

    wanted = {("web.1", "success"): 3, ("web.2", "success"): 2, ("web.2", "failure"): 1}

    def counted(rows: list[dict[str, Any]]) -> dict[tuple[str, str], float]:
        """Each dyno's non-zero counts by result."""
        return {
            (row["labels"]["instance"], row["labels"]["result"]): row["value"]
            for row in rows
            if row["value"]
        }

    rows = reader.wait_for(
        'quartapp_logins_total{job="quartapp"}', lambda rows: counted(rows) == wanted
    )
    assert counted(rows) == wanted
    # Each dyno's two workers, each with its own process figures.
    memory = reader.wait_for(
        'process_resident_memory_bytes{job="quartapp"}',
        lambda rows: len(rows) == 4 and all(row["value"] > 10_000_000 for row in rows),
    )
    by_dyno = {
        dyno: {r["labels"]["pid"] for r in memory if r["labels"]["instance"] == dyno}
        for dyno in ("web.1", "web.2")
    }
    assert all(len(workers) == 2 for workers in by_dyno.values()), by_dyno
    # One group per dyno: one worker of each pushes.
    groups = reader.query('push_time_seconds{job="quartapp"}')
    assert sorted(row["labels"]["instance"] for row in groups) == ["web.1", "web.2"]

    # A dyno that stops takes its group away, so no stale series are left behind.
    two.stop()
    reader.wait_for(
        'push_time_seconds{job="quartapp"}',
        lambda rows: [row["labels"]["instance"] for row in rows] == ["web.1"],
    )
    assert "metrics push" not in one.stderr, one.stderr
