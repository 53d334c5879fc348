"""The push's parts on their own: the election, the credentials, and a gateway that fails.

The whole push, through real servers to a real Pushgateway and Prometheus, is in
``tests/app/test_server_metrics_push.py``. Here a small real HTTP server on 127.0.0.1
stands in for the gateway's address, to see what is sent to it.
"""

from __future__ import annotations

import base64
import logging
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter

from quartapp.metrics.push import Election, Gateway, Pusher
from tests.support.ports import free_port


class Recorder(BaseHTTPRequestHandler):
    """Answers every PUT with 200 and keeps what came: path, headers and body."""

    seen: list[tuple[str, str, dict[str, str], bytes]] = []  # noqa: RUF012 (shared on purpose)

    def do_PUT(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        self.seen.append(("PUT", self.path, dict(self.headers), self.rfile.read(length)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[tuple[str, list[tuple[str, str, dict[str, str], bytes]]]]:
    Recorder.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}", Recorder.seen
    finally:
        server.shutdown()
        server.server_close()


def registry() -> CollectorRegistry:
    own = CollectorRegistry()
    Counter("pushed_things", "Things.", registry=own).inc(3)
    return own


def test_one_worker_of_a_folder_wins_and_holds_the_lock(tmp_path: Path) -> None:
    first, second = Election(str(tmp_path)), Election(str(tmp_path))

    assert first.won()
    assert first.won()  # still held
    assert not second.won()
    # The pusher dies: the kernel frees its lock, and the next try wins.
    assert first.fd is not None
    os.close(first.fd)
    assert second.won()


def test_without_a_shared_folder_the_process_pushes_alone() -> None:
    assert Election(None).won()


async def test_credentials_leave_the_url_and_go_in_basic_auth(
    recorder: tuple[str, list[tuple[str, str, dict[str, str], bytes]]],
) -> None:
    address, seen = recorder
    gateway = Gateway.parse(f"http://user%40x:p%3Ass@{address}/base")
    assert gateway.url == f"http://{address}/base"

    pusher = Pusher(f"http://user%40x:p%3Ass@{address}/base", "web.1", registry, None)

    assert await pusher.push_once()
    ((method, path, headers, body),) = seen
    assert (method, path) == ("PUT", "/base/metrics/job/quartapp/instance/web.1")
    assert headers["Authorization"] == "Basic " + base64.b64encode(b"user@x:p:ss").decode()
    assert b"pushed_things_total 3.0" in body


async def test_a_failing_gateway_is_logged_once_and_never_raises(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="quartapp.metrics")
    # Nothing listens there: every push is refused.
    pusher = Pusher(f"http://u:secret@127.0.0.1:{free_port()}", "web.1", registry, None)

    assert not await pusher.push_once()
    assert not await pusher.push_once()

    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert warnings[0].startswith("metrics push to http://127.0.0.1:")
    assert "secret" not in warnings[0]
