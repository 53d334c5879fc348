"""A login flood against a real server, run in its own process: ``python -m tests.support.flood``.

Each of ``--connections`` threads opens one keep-alive connection, reads the login
form's CSRF token and session cookie from the page, then loops ``POST /login`` with a
wrong password until ``--seconds`` have passed, as fast as the server answers. It
prints one JSON line: the count of each status, the requests per second and when the
first connection stopped sending, as ``time.monotonic()`` (with
``--ready``, after a line ``ready`` once every connection has sent its first login). With
``--stop-on-eof`` it also stops when its standard input closes, so a test ends the flood
the moment it has measured what it needs rather than waiting out a margin.

It runs apart from the test that starts it, so its threads never hold the test's GIL
while the test times the legitimate client. ``--source`` sends from another loopback
address (127.0.0.2); ``--forward`` writes an ``X-Forwarded-For`` of ``fixed:<address>``,
``random-ipv4`` (a new address for every request), ``random-ipv6`` (a new one anywhere)
or ``random-ipv6-48`` (a new /64 inside one /48 for every request).
"""

from __future__ import annotations

import argparse
import http.client
import ipaddress
import json
import random
import re
import secrets
import sys
import threading
import time
from collections import Counter
from urllib.parse import urlencode

# tests.support.server's patterns, not imported from there: that module imports pytest,
# a quarter of a second of CPU before this process can start a flood that a timing
# test waits for.
CSRF_INPUT = re.compile(r'<input[^>]*\bname="csrf_token"[^>]*>')
INPUT_VALUE = re.compile(r'\bvalue="([^"]+)"')
WRONG = "wrong password, quite long"
IPV6_48 = ipaddress.IPv6Network("2001:db8:66::/48")


def forwarded_for(mode: str) -> dict[str, str]:
    """The X-Forwarded-For header of one request, if the flood forges one."""
    if mode.startswith("fixed:"):
        return {"X-Forwarded-For": mode.removeprefix("fixed:")}
    if mode == "random-ipv4":
        address: ipaddress.IPv4Address | ipaddress.IPv6Address
        address = ipaddress.IPv4Address(random.getrandbits(32))
        return {"X-Forwarded-For": str(address)}
    if mode == "random-ipv6":
        address = ipaddress.IPv6Address((0x2 << 124) | random.getrandbits(125))
        return {"X-Forwarded-For": str(address)}
    if mode == "random-ipv6-48":
        host = random.getrandbits(80)
        return {"X-Forwarded-For": str(IPV6_48.network_address + host)}
    return {}


def username(mode: str) -> str:
    return secrets.token_hex(32) if mode == "random" else mode


class Flooder(threading.Thread):
    """One keep-alive connection looping wrong-password logins."""

    def __init__(
        self,
        args: argparse.Namespace,
        until: float,
        statuses: Counter[int],
        lock: threading.Lock,
        stop: threading.Event,
    ) -> None:
        super().__init__(daemon=True)
        # Set once this connection has sent its first login (or failed to).
        self.started = threading.Event()
        self.args = args
        self.until = until
        self.stop = stop
        self.statuses = statuses
        self.lock = lock
        # When this connection stopped sending (time.monotonic(), one clock for every
        # process on Linux): the flood thins from the first of these.
        self.ended = until

    def connect(self) -> tuple[http.client.HTTPConnection, str, str]:
        source = (self.args.source, 0) if self.args.source else None
        connection = http.client.HTTPConnection(
            "127.0.0.1", self.args.port, timeout=10, source_address=source
        )
        connection.request("GET", "/login")
        response = connection.getresponse()
        page = response.read().decode()
        cookie = (response.getheader("Set-Cookie") or "").split(";", 1)[0]
        field = CSRF_INPUT.search(page)
        value = INPUT_VALUE.search(field.group(0)) if field else None
        if value is None:
            raise RuntimeError(f"no CSRF token on /login ({response.status})")
        return connection, cookie, value.group(1)

    def run(self) -> None:
        connection = None
        while time.monotonic() < self.until and not self.stop.is_set():
            try:
                if connection is None:
                    connection, cookie, token = self.connect()
                form = {
                    "username": username(self.args.username),
                    "password": WRONG,
                    "csrf_token": token,
                }
                headers = {
                    "Content-Type": "application/x-www-form-urlencoded",
                    "Cookie": cookie,
                    **forwarded_for(self.args.forward),
                }
                connection.request("POST", "/login", urlencode(form), headers)
                self.started.set()
                response = connection.getresponse()
                response.read()
                status = response.status
                if response.will_close:
                    connection.close()
                    connection = None
            except (OSError, http.client.HTTPException, RuntimeError):
                status = 0  # the connection failed: counted, then a new one
                if connection is not None:
                    connection.close()
                connection = None
                time.sleep(0.05)
            self.started.set()
            with self.lock:
                self.statuses[status] += 1
        self.ended = time.monotonic()
        if connection is not None:
            connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--source", default="")
    parser.add_argument("--forward", default="")
    parser.add_argument("--username", default="random", help="a name, or 'random'")
    parser.add_argument("--ready", action="store_true", help="say when the flood is under way")
    parser.add_argument("--stop-on-eof", action="store_true", help="stop early when stdin closes")
    args = parser.parse_args()
    statuses: Counter[int] = Counter()
    started = time.monotonic()
    lock = threading.Lock()
    until = started + args.seconds
    stop = threading.Event()
    if args.stop_on_eof:

        def stop_at_eof() -> None:
            sys.stdin.read()
            stop.set()

        threading.Thread(target=stop_at_eof, daemon=True).start()
    threads = [Flooder(args, until, statuses, lock, stop) for _ in range(args.connections)]
    for thread in threads:
        thread.start()
    if args.ready:
        # The flood is under way: every connection is open and has sent a login. A test
        # times its head start from here, not from a process start that load can slow.
        for thread in threads:
            thread.started.wait(max(0.0, until - time.monotonic()))
        print("ready", flush=True)
    for thread in threads:
        thread.join()
    seconds = time.monotonic() - started
    total = sum(statuses.values())
    print(
        json.dumps(
            {
                "statuses": {str(k): v for k, v in sorted(statuses.items())},
                "requests": total,
                "per_second": round(total / seconds, 1),
                "ended_at": min(thread.ended for thread in threads),
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
