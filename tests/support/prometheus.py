"""A real Prometheus Pushgateway and a real Prometheus for the metrics tests.

Each runs from its Debian package's binary (``prometheus-pushgateway``, ``prometheus``)
on a free port of 127.0.0.1, with its data in a temporary folder, and is stopped
afterwards. Prometheus scrapes the Pushgateway (and any other target given) every
second, with ``honor_labels: true`` as a Pushgateway's scrape must be configured, so a
pushed ``instance`` is kept. Queries go through Prometheus's HTTP API.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.ports import free_port

PUSHGATEWAY_HINT = (
    "the Prometheus Pushgateway is not installed: apt-get install prometheus-pushgateway"
)
PROMETHEUS_HINT = "Prometheus is not installed: apt-get install prometheus"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
SCRAPE_INTERVAL = "1s"


def binary(name: str, hint: str) -> str:
    """The path of ``name`` on PATH (or in /usr/bin), or skip the test with ``hint``."""
    found = shutil.which(name) or shutil.which(name, path="/usr/bin")
    if found is None:
        pytest.skip(hint)
    return found


@dataclass
class Process:
    """A started binary, where it listens, and its output."""

    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def get(self, path: str) -> tuple[int, bytes]:
        """``GET path``: the status and body, or (0, b"") when nothing answers yet."""
        # Always this test's own server on 127.0.0.1 over plain http://.
        request = urllib.request.Request(self.url + path)  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            with error:
                return error.code, error.read()
        except OSError:
            return 0, b""

    def wait_ready(self) -> None:
        """Return once ``/-/ready`` answers 200; fail with the output if it never does."""
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(
                    f"{self.log.stem} exited with {self.process.returncode}:\n{self.output()}"
                )
            if self.get("/-/ready")[0] == 200:
                return
            time.sleep(0.1)
        pytest.fail(f"{self.log.stem} was not ready within {START_TIMEOUT}s:\n{self.output()}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@contextmanager
def started(command: Sequence[str], port: int, log: Path) -> Iterator[Process]:
    """Run ``command``, wait until it is ready, and always stop it afterwards."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    running = Process(process, port, log)
    try:
        running.wait_ready()
        yield running
    finally:
        running.stop()


@contextmanager
def pushgateway(folder: Path) -> Iterator[Process]:
    """A Pushgateway on a free port, keeping what is pushed in memory only."""
    command = binary("prometheus-pushgateway", PUSHGATEWAY_HINT)
    port = free_port()
    with started(
        [command, f"--web.listen-address=127.0.0.1:{port}"], port, folder / "pushgateway.log"
    ) as gateway:
        yield gateway


@dataclass
class Prometheus(Process):
    """A running Prometheus and its query API."""

    def query(self, expression: str) -> list[dict[str, Any]]:
        """The instant vector ``expression`` gives now: each series' labels and value."""
        status, body = self.get("/api/v1/query?" + urllib.parse.urlencode({"query": expression}))
        assert status == 200, body
        answer = json.loads(body)
        assert answer["status"] == "success", answer
        return [
            {"labels": row["metric"], "value": float(row["value"][1])}
            for row in answer["data"]["result"]
        ]

    def wait_for(
        self,
        expression: str,
        ready: Callable[[list[dict[str, Any]]], bool],
        timeout: float = START_TIMEOUT,
    ) -> list[dict[str, Any]]:
        """``query(expression)`` once ``ready`` says it is; fail with the last answer if not."""
        deadline = time.monotonic() + timeout
        while True:
            rows = self.query(expression)
            if ready(rows):
                return rows
            if time.monotonic() > deadline:
                pytest.fail(f"{expression} never became as expected; last: {rows}")
            time.sleep(0.25)


def scrape_config(targets: Mapping[str, str]) -> str:
    """A prometheus.yml scraping each ``job: host:port`` every second, honouring labels."""
    jobs = [
        {
            "job_name": job,
            "honor_labels": True,
            "scrape_interval": SCRAPE_INTERVAL,
            "static_configs": [{"targets": [target]}],
        }
        for job, target in targets.items()
    ]
    # JSON is YAML: no YAML library needed to write it.
    return json.dumps({"global": {"scrape_interval": SCRAPE_INTERVAL}, "scrape_configs": jobs})


@contextmanager
def prometheus(folder: Path, targets: Mapping[str, str] | str) -> Iterator[Prometheus]:
    """A Prometheus on a free port scraping ``targets`` (job name: ``host:port``).

    ``targets`` may instead be a whole ``prometheus.yml``, given as it is.
    """
    command = binary("prometheus", PROMETHEUS_HINT)
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "prometheus.yml"
    config.write_text(targets if isinstance(targets, str) else scrape_config(targets))
    port = free_port()
    arguments = [
        command,
        f"--config.file={config}",
        f"--storage.tsdb.path={folder / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    with started(arguments, port, folder / "prometheus.log") as process:
        yield Prometheus(process.process, process.port, process.log)


def check_config(text: str, folder: Path) -> subprocess.CompletedProcess[str]:
    """``promtool check config`` of ``text``: its exit status and output."""
    command = binary("promtool", PROMETHEUS_HINT)
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "check.yml"
    config.write_text(text)
    return subprocess.run(
        [command, "check", "config", str(config)],
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT,
        check=False,
    )
