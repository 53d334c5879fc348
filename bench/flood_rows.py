"""How fast a login flood can grow ``throttle_counters``, and how fast pruning empties it.

``python -m bench.flood_rows``: a real hypercorn (production, ``TRUSTED_PROXY_HOPS=1``,
the cheapest argon2 the app accepts, so hashing is as fast as it can be) on a SQLite
file. ``tests/support/flood.py`` floods it with wrong passwords and random 64-character names:

- from one address (127.0.0.2, no forwarded header);
- from a new forged IPv4 address for every request;
- from a new forged IPv6 address for every request, anywhere (4 counters each: the
  /64, its /56 and /48, and the name).

It prints the rows each wrote per second and the logins it got verified per second,
then ages every row past its window and times ``quart db prune`` deleting them.
Figures only: nothing here passes or fails.
"""

from __future__ import annotations

import argparse
import http.client
import json
import secrets
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.servers import ROOT, clean_env, free_port

MODES = {
    "one address": ["--source", "127.0.0.2"],
    "new IPv4 per request": ["--forward", "random-ipv4"],
    "new IPv6 per request": ["--forward", "random-ipv6"],
}


def rows(database: Path) -> int:
    with sqlite3.connect(database) as connection:
        return int(connection.execute("SELECT count(*) FROM throttle_counters").fetchone()[0])


def wait_healthy(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit("the server exited before serving")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            connection.request("GET", "/healthz")
            if connection.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit("the server did not answer /healthz")


def quart(env: dict[str, str], *args: str) -> str:
    command = [sys.executable, "-m", "quart", "--app", "quartapp", *args]
    done = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=True
    )
    return done.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--connections", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        directory = Path(folder)
        database = directory / "quartapp.db"
        env = clean_env(
            QUARTAPP_ENV="production",
            SECRET_KEY=secrets.token_urlsafe(32),
            DATABASE_URL=f"sqlite:///{database}",
            QUARTAPP_INSTANCE_PATH=str(directory / "instance"),
            QUARTAPP_TRUSTED_HOSTS='["127.0.0.1"]',
            QUARTAPP_TRUSTED_PROXY_HOPS="1",
            QUARTAPP_ARGON2_MEMORY_COST="19456",
            QUARTAPP_ARGON2_TIME_COST="2",
        )
        quart(env, "init-db")
        port = free_port()
        command = [
            sys.executable,
            "-m",
            "hypercorn",
            "--config",
            "hypercorn.toml",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(args.workers),
            "quartapp:app",
        ]
        with (directory / "server.log").open("wb") as log:
            server = subprocess.Popen(
                command, cwd=ROOT, env=env, stdout=log, stderr=log, start_new_session=True
            )
        try:
            wait_healthy(port, server)
            print(
                f"{args.connections} connections, {args.seconds:g} s each, "
                f"{args.workers} worker(s), argon2 t=2 m=19 MiB"
            )
            print(f"{'flood':<24}{'requests/s':>12}{'verified/s':>12}{'rows/s':>10}")
            for name, options in MODES.items():
                before = rows(database)
                flood = [
                    sys.executable,
                    "-m",
                    "tests.support.flood",
                    "--port",
                    str(port),
                    "--connections",
                    str(args.connections),
                    "--seconds",
                    str(args.seconds),
                    *options,
                ]
                started = time.monotonic()
                output = subprocess.run(
                    flood, cwd=ROOT, capture_output=True, text=True, check=True
                ).stdout
                seconds = time.monotonic() - started
                result = json.loads(output)
                verified = result["statuses"].get("200", 0) / seconds
                grown = (rows(database) - before) / seconds
                print(f"{name:<24}{result['per_second']:>12.1f}{verified:>12.1f}{grown:>10.1f}")
        finally:
            server.terminate()
            server.wait(30)
        total = rows(database)
        with sqlite3.connect(database) as connection:
            connection.execute("UPDATE throttle_counters SET window_end = ?", (time.time() - 1,))
        started = time.monotonic()
        said = quart(env, "db", "prune").strip()
        seconds = time.monotonic() - started
        print(f"db prune: {total} rows aged past their window, left {rows(database)}")
        print(f"  in {seconds:.2f} s including the CLI's start ({said})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
