"""Running wrk and reading its result.

wrk's own summary is for people; ``wrk.lua``'s ``done()`` prints the same figures as
one JSON line, so nothing here parses wrk's human-readable output.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent / "wrk.lua"
MARKER = "BENCH_RESULT "
# Logins queue for the hashing semaphore for seconds in a flood; wrk's default of 2 s
# would count them as timeouts and leave them out of the latency.
TIMEOUT = "30s"


class WrkError(RuntimeError):
    """wrk failed or printed no result."""


@dataclass(frozen=True)
class Load:
    """How hard wrk pushes: threads, connections and seconds."""

    threads: int
    connections: int
    seconds: int  # wrk takes whole seconds


@dataclass(frozen=True)
class Result:
    """What one wrk run measured."""

    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    errors: int  # sockets that failed or timed out, and responses of another status

    @property
    def rps(self) -> float:
        """Requests completed per second."""
        return self.requests / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict[str, float]:
        """The figures for the JSON report, with req/s."""
        return {**asdict(self), "rps": round(self.rps, 1)}


def available() -> bool:
    """Whether wrk is on PATH."""
    return shutil.which("wrk") is not None


def command(url: str, load: Load, headers: Mapping[str, str]) -> list[str]:
    """The wrk command line for ``url``."""
    args = [
        "wrk",
        f"-t{load.threads}",
        f"-c{load.connections}",
        f"-d{load.seconds}s",
        "--timeout",
        TIMEOUT,
        "-s",
        str(SCRIPT),
    ]
    for name, value in headers.items():
        args += ["-H", f"{name}: {value}"]
    return [*args, url]


def start(
    url: str,
    load: Load,
    headers: Mapping[str, str] | None = None,
    form: str | None = None,
    expect: int = 200,
    cookies: Path | None = None,
) -> subprocess.Popen[str]:
    """Start wrk on ``url``; ``form`` makes every request a POST of that body.

    A response whose status is not ``expect`` counts as an error. ``cookies``: a file
    of Cookie headers, one a line; each request sends the next.
    """
    env = {name: value for name, value in os.environ.items() if not name.startswith("WRK_")}
    env["WRK_EXPECT_STATUS"] = str(expect)
    if form is not None:
        env["WRK_FORM"] = form
    if cookies is not None:
        env["WRK_COOKIES"] = str(cookies)
    return subprocess.Popen(
        command(url, load, headers or {}),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen[str], load: Load) -> Result:
    """Wait for a started wrk and read its result."""
    try:
        out, err = process.communicate(timeout=load.seconds + 60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise WrkError("wrk did not finish in time") from None
    return parse(out, err, process.returncode, process.args)


def run(
    url: str,
    load: Load,
    headers: Mapping[str, str] | None = None,
    form: str | None = None,
    expect: int = 200,
    cookies: Path | None = None,
) -> Result:
    """Run wrk on ``url`` and return what it measured."""
    return finish(start(url, load, headers, form, expect, cookies), load)


def parse(out: str, err: str, code: int, args: Sequence[str] | object) -> Result:
    """The result line of ``wrk.lua`` in wrk's output."""
    line = next((line for line in out.splitlines() if line.startswith(MARKER)), None)
    if code != 0 or line is None:
        raise WrkError(f"wrk failed ({code}): {args}\n{err.strip() or out.strip()}")
    data = json.loads(line.removeprefix(MARKER))
    return Result(
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        max_ms=data["max_us"] / 1000,
        errors=sum(
            data[key]
            for key in (
                "connect_errors",
                "read_errors",
                "write_errors",
                "status_errors",
                "timeouts",
                "unexpected_status",
            )
        ),
    )
