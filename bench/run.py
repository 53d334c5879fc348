"""Serve quartapp and the reference apps, drive them with wrk in rounds, report.

Every app runs with one worker on 127.0.0.1. Each round measures every app in every
scenario once, so a slow minute on the machine hits all of them alike; the report
gives the median of the rounds, the ratio of quartapp to each anchor and whether the
targets of issue 8 are met. It reports; a missed target does not fail the run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
import urllib.parse
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from bench import servers, wrk
from bench.servers import BenchError, Server

RESULTS = Path(__file__).resolve().parent / "results" / "latest.json"
MIB = 1024 * 1024
RSS_SAMPLE_SECONDS = 0.05
RSS_SLACK = 50 * MIB
HASH_SAMPLES = 5
BENCH_USER = "bench"

QUARTAPP = "quartapp"
QUARTAPP_2W = "quartapp --workers 2"
TUTORIAL = "flask-tutorial"
FLASK_LOGIN = "flask-login-sqlalchemy"
FLASK_WTF = "flask-wtf"
MINIMAL_QUART = "minimal-quart"


class GetScenario(NamedTuple):
    """A plain GET measured on quartapp and its anchors, logged in or not."""

    path: str
    apps: list[str]  # quartapp first, then the anchors
    logged_in: bool


SCENARIOS = {
    "hello": GetScenario("/hello", [QUARTAPP, TUTORIAL, FLASK_LOGIN], logged_in=True),
    "home": GetScenario("/", [QUARTAPP, MINIMAL_QUART], logged_in=False),
    "login": GetScenario("/login", [QUARTAPP, FLASK_WTF], logged_in=False),
}
ALL_SCENARIOS = ("hello", "home", "login", "storm", "flood", "workers")
TITLES = {
    "hello": "authenticated /hello",
    "home": "anonymous /",
    "login": "GET /login",
}
# quartapp's req/s over the anchor's, at least: issue 8's targets.
RATIO_TARGETS = {
    ("hello", TUTORIAL): 1.0,
    ("hello", FLASK_LOGIN): 1.5,
    ("home", MINIMAL_QUART): 0.9,
    ("login", FLASK_WTF): 1.0,
}
STORM_P99_FACTOR = 2.0
# The status of a successful login: a redirect to /hello.
LOGGED_IN = 302


@dataclass(frozen=True)
class Settings:
    """What the command line chose."""

    rounds: int
    load: wrk.Load
    scenarios: tuple[str, ...]
    apps: frozenset[str] | None  # None: every app
    output: Path


@dataclass(frozen=True)
class Hashing:
    """The shipped argon2 cost and the login rate it allows one worker."""

    memory_kib: int
    time_cost: int
    parallelism: int
    concurrency: int
    seconds: float
    cores: int

    @property
    def limit(self) -> float:
        """Logins per second: HASHING_CONCURRENCY hashes at once, no more than the cores."""
        return min(self.concurrency, self.cores) / self.seconds


def parse_args(argv: list[str] | None) -> Settings:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--rounds", type=int, default=3, help="rounds, at least 2; the median is reported"
    )
    parser.add_argument("--duration", type=int, default=8, help="seconds per wrk run")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (-t)")
    parser.add_argument("--connections", type=int, default=50, help="wrk connections (-c)")
    parser.add_argument(
        "--scenarios",
        default=",".join(ALL_SCENARIOS),
        help=f"comma-separated subset of {','.join(ALL_SCENARIOS)}",
    )
    parser.add_argument("--output", type=Path, default=RESULTS, help="where to write the JSON")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a smoke run: 1 round of 1 s, 10 connections, /hello on quartapp and Flask only",
    )
    args = parser.parse_args(argv)
    scenarios = tuple(name.strip() for name in args.scenarios.split(",") if name.strip())
    unknown = sorted(set(scenarios) - set(ALL_SCENARIOS))
    if unknown:
        parser.error(f"unknown scenario(s) {', '.join(unknown)}; pick from {ALL_SCENARIOS}")
    if args.quick:
        return Settings(
            1, wrk.Load(1, 10, 1), ("hello",), frozenset({QUARTAPP, TUTORIAL}), args.output
        )
    if args.rounds < 2:
        parser.error("--rounds must be at least 2 (a median of one is no median); see --quick")
    if args.duration < 1 or args.threads < 1:
        parser.error("--duration and --threads must be at least 1")
    if args.connections < args.threads:
        parser.error("--connections must be at least --threads")
    return Settings(
        args.rounds,
        wrk.Load(args.threads, args.connections, args.duration),
        scenarios,
        None,
        args.output,
    )


def main(argv: list[str] | None = None) -> int:
    """Run the bench; 0 when it measured everything, whatever the targets say."""
    settings = parse_args(argv)
    if not wrk.available():
        print("error: wrk is not installed: apt-get install wrk", file=sys.stderr)
        return 1
    try:
        report = Bench(settings).run()
    except (BenchError, wrk.WrkError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    settings.output.parent.mkdir(parents=True, exist_ok=True)
    settings.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {settings.output}")
    return 0


def shipped_config() -> dict[str, Any]:
    """quartapp's defaults and config.toml, the settings a fresh checkout serves with."""
    from quartapp.config import DEFAULTS

    with (servers.ROOT / "config.toml").open("rb") as handle:
        return {**DEFAULTS, **tomllib.load(handle)}


def measure_hashing() -> Hashing:
    """Time one login's argon2 verify in this process, at the shipped parameters."""
    from quartapp import passwords

    config = shipped_config()
    hasher = passwords.build(config).hasher
    password = secrets.token_urlsafe(24)
    stored = hasher.hash(password)
    times = []
    for _ in range(HASH_SAMPLES):
        started = time.perf_counter()
        hasher.verify(stored, password)
        times.append(time.perf_counter() - started)
    return Hashing(
        memory_kib=config["ARGON2_MEMORY_COST"],
        time_cost=config["ARGON2_TIME_COST"],
        parallelism=config["ARGON2_PARALLELISM"],
        concurrency=config["HASHING_CONCURRENCY"],
        seconds=statistics.median(times),
        cores=os.cpu_count() or 1,
    )


class Bench:
    """One run: the servers, the rounds and the figures they gave."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.servers: dict[str, Server] = {}
        self.credentials: dict[str, tuple[str, str]] = {}
        # results[scenario][app] = one wrk result per round
        self.results: dict[str, dict[str, list[wrk.Result]]] = {}
        self.rss: list[dict[str, int]] = []
        # quartapp's RSS once started and logged in to, before any load: the baseline
        # of the budget, since memory taken by earlier runs may never be given back.
        self.idle_rss = 0
        self.storm_logins: list[wrk.Result] = []
        self.flood_logins: list[wrk.Result] = []
        self.storm_form: servers.PreLogin | None = None
        self.hashing: Hashing | None = None
        self.load_before = 0.0

    def wanted(self, app: str) -> bool:
        return self.settings.apps is None or app in self.settings.apps

    def steps(self) -> list[str]:
        """The scenarios of one round, with quartapp's idle /hello first if they need it
        and the hello scenario is not there to give it."""
        scenarios = list(self.settings.scenarios)
        if {"storm", "workers"} & set(scenarios) and "hello" not in scenarios:
            scenarios.insert(0, "idle")
        return scenarios

    def apps_needed(self) -> list[str]:
        needed = []
        for name in self.settings.scenarios:
            if name in SCENARIOS:
                needed += [app for app in SCENARIOS[name].apps if self.wanted(app)]
            else:
                needed.append(QUARTAPP)
            if name == "workers":
                needed.append(QUARTAPP_2W)
        return list(dict.fromkeys(needed))

    def run(self) -> dict[str, Any]:
        settings = self.settings
        load = settings.load
        print(
            f"bench: {settings.rounds} round(s) of wrk -t{load.threads} -c{load.connections} "
            f"-d{load.seconds}s, 1 worker per app, {os.cpu_count()} cores, "
            f"scenarios {', '.join(settings.scenarios)}",
            flush=True,
        )
        self.load_before = os.getloadavg()[0]
        if {"storm", "flood"} & set(settings.scenarios):
            self.hashing = measure_hashing()
        with tempfile.TemporaryDirectory(prefix="quartapp-bench-") as tmp, self.serving(Path(tmp)):
            for number in range(1, settings.rounds + 1):
                started = time.monotonic()
                for name in self.steps():
                    getattr(self, f"round_{name}")()
                print(f"round {number}: {time.monotonic() - started:.0f} s", flush=True)
        report = self.report()
        print_report(report)
        return report

    # Servers

    @contextmanager
    def serving(self, tmp: Path) -> Iterator[None]:
        """Start every server the chosen scenarios need; always stop them all."""
        logs = tmp / "logs"
        logs.mkdir()
        try:
            for app in self.apps_needed():
                self.servers[app] = self.start(app, tmp, logs)
            for app, server in self.servers.items():
                server.wait_ready("/healthz" if app.startswith(QUARTAPP) else "/")
            for app in self.credentials:
                # A first login checks each app's form works before anything is timed.
                self.log_in(app)
            if QUARTAPP in self.servers:
                self.idle_rss = self.servers[QUARTAPP].rss_bytes()
            yield
        except BaseException:
            for server in self.servers.values():
                if server.process.poll() is not None:
                    print(f"{server.name} log:\n{server.log_tail()}", file=sys.stderr)
            raise
        finally:
            servers.stop_all(self.servers.values())

    def start(self, app: str, tmp: Path, logs: Path) -> Server:
        bind = ["--bind", "127.0.0.1:{port}"]
        gunicorn = [str(servers.BIN / "gunicorn"), "--workers", "1", "--worker-class", "sync"]
        slug = app.replace(" ", "").replace("-", "_")
        if app.startswith(QUARTAPP):
            workers = "2" if app == QUARTAPP_2W else "1"
            env = self.quartapp_env(app, tmp / slug)
            command = [
                str(servers.BIN / "hypercorn"),
                "--config",
                "hypercorn.toml",
                *bind,
                "--workers",
                workers,
                "quartapp:app",
            ]
        elif app == MINIMAL_QUART:
            env = servers.clean_env()
            command = [
                str(servers.BIN / "hypercorn"),
                *bind,
                "--workers",
                "1",
                "bench.apps.minimal_quart:app",
            ]
        else:
            module = {
                TUTORIAL: "tutorial",
                FLASK_LOGIN: "flask_login_app",
                FLASK_WTF: "flask_wtf_app",
            }
            env = servers.clean_env(BENCH_DATABASE=str(tmp / f"{slug}.db"))
            command = [*gunicorn, *bind, f"bench.apps.{module[app]}:app"]
            self.credentials[app] = ("admin", "admin")
        return servers.start(slug, command, env, logs)

    def quartapp_env(self, app: str, folder: Path) -> dict[str, str]:
        """quartapp as shipped in development, on its own instance folder and SQLite file,
        with a bench user made by the project's own CLI."""
        env = servers.clean_env(
            QUARTAPP_ENV="development",
            QUARTAPP_INSTANCE_PATH=str(folder / "instance"),
            DATABASE_URL=f"sqlite:///{folder / 'quartapp.db'}",
        )
        password = secrets.token_urlsafe(24)
        created = subprocess.run(
            [
                sys.executable,
                "-m",
                "quart",
                "--app",
                "quartapp",
                "users",
                "create",
                BENCH_USER,
                "--password-stdin",
            ],
            cwd=servers.ROOT,
            env=env,
            input=password + "\n",
            capture_output=True,
            text=True,
            timeout=servers.START_TIMEOUT,
            check=False,
        )
        if created.returncode != 0:
            raise BenchError(f"creating the bench user failed:\n{created.stderr.strip()}")
        self.credentials[app] = (BENCH_USER, password)
        return env

    def log_in(self, app: str) -> dict[str, str]:
        """A fresh logged-in cookie, got through the app's own login form.

        Fresh for every run: quartapp re-sends its cookie once a login is a minute old,
        and wrk would keep sending the old one, paying that on every request.
        """
        username, password = self.credentials[app]
        return servers.log_in(self.servers[app], username, password)

    # Scenarios, one round each

    def record(self, scenario: str, app: str, result: wrk.Result) -> None:
        self.results.setdefault(scenario, {}).setdefault(app, []).append(result)

    def get(self, app: str, path: str, cookies: Mapping[str, str] | None = None) -> wrk.Result:
        headers = {"Cookie": servers.cookie_header(cookies)} if cookies else {}
        return wrk.run(self.servers[app].url + path, self.settings.load, headers)

    def round_get(self, scenario: str) -> None:
        path, apps, logged_in = SCENARIOS[scenario]
        for app in filter(self.wanted, apps):
            cookies = self.log_in(app) if logged_in else None
            self.record(scenario, app, self.get(app, path, cookies))

    def round_hello(self) -> None:
        self.round_get("hello")

    def round_home(self) -> None:
        self.round_get("home")

    def round_login(self) -> None:
        self.round_get("login")

    def round_idle(self) -> None:
        """quartapp's /hello alone, for the storm and 2 workers when "hello" is not run."""
        self.record("hello", QUARTAPP, self.get(QUARTAPP, "/hello", self.log_in(QUARTAPP)))

    def login_form(self) -> tuple[str, dict[str, str]]:
        """The body and headers of a correct login, reusable for a whole storm.

        quartapp's CSRF token is time-signed, not one-time, and a login clears the
        session it gives back, not the pre-login cookie wrk keeps sending; so one pair
        of cookie and token logs in again and again. Checked here rather than assumed.
        """
        server = self.servers[QUARTAPP]
        if self.storm_form is None:
            attempt = servers.pre_login(server, *self.credentials[QUARTAPP])
            for number in (1, 2):
                try:
                    servers.post_login(server, attempt)
                except BenchError as error:
                    raise BenchError(
                        f"login {number} of 2 with the same pre-login cookie and CSRF token "
                        f"failed, and the storm and flood replay that pair: {error}"
                    ) from None
            self.storm_form = attempt
        body = urllib.parse.urlencode(self.storm_form.form)
        return body, {"Cookie": servers.cookie_header(self.storm_form.cookies)}

    def round_storm(self) -> None:
        """Logins at the hashing limit while a second wrk measures /hello."""
        assert self.hashing is not None
        body, headers = self.login_form()
        load = self.settings.load
        # Twice the hashing slots keeps the semaphore full without a long queue.
        # The storm starts half a second before /hello's run and ends half a second
        # after it (wrk takes whole seconds), so that all of /hello's run is under it.
        lead = 0.5
        logins = wrk.Load(1, max(2, 2 * self.hashing.concurrency), load.seconds + 1)
        url = self.servers[QUARTAPP].url
        hello_headers = {"Cookie": servers.cookie_header(self.log_in(QUARTAPP))}
        storm = wrk.start(url + "/login", logins, headers, form=body, expect=LOGGED_IN)
        try:
            time.sleep(lead)
            hello = wrk.run(url + "/hello", load, hello_headers)
        finally:
            self.storm_logins.append(wrk.finish(storm, logins))
        self.record("storm", QUARTAPP, hello)

    def round_flood(self) -> None:
        """A flood of logins on every connection, with the server's memory sampled."""
        body, headers = self.login_form()
        server = self.servers[QUARTAPP]
        with sampling(server) as samples:
            before = samples[0]
            result = wrk.run(
                server.url + "/login", self.settings.load, headers, form=body, expect=LOGGED_IN
            )
        self.flood_logins.append(result)
        self.rss.append({"before": before, "peak": max(samples)})

    def round_workers(self) -> None:
        """quartapp's /hello with two workers, to set against one."""
        cookies = self.log_in(QUARTAPP_2W)
        self.record("workers", QUARTAPP_2W, self.get(QUARTAPP_2W, "/hello", cookies))

    # Figures

    def report(self) -> dict[str, Any]:
        """Medians of the rounds, ratios, targets and the raw rounds, for JSON."""
        settings = self.settings
        load = settings.load
        report: dict[str, Any] = {
            "settings": {
                "rounds": settings.rounds,
                "wrk": {
                    "threads": load.threads,
                    "connections": load.connections,
                    "seconds": load.seconds,
                },
                "cores": os.cpu_count(),
                "python": platform.python_version(),
                "workers_per_app": 1,
                # Other work on the machine skews every figure: a busy machine shows here.
                "load_average_1min": {
                    "before": round(self.load_before, 2),
                    "after": round(os.getloadavg()[0], 2),
                },
            },
            "scenarios": {},
            "targets": [],
        }
        scenarios = report["scenarios"]
        targets = report["targets"]
        for name, per_app in self.results.items():
            scenarios[name] = {"apps": {app: summary(rounds) for app, rounds in per_app.items()}}
        for (name, anchor), minimum in RATIO_TARGETS.items():
            apps = scenarios.get(name, {}).get("apps", {})
            if QUARTAPP in apps and anchor in apps and apps[anchor]["rps"] > 0:
                ratio = apps[QUARTAPP]["rps"] / apps[anchor]["rps"]
                apps[anchor]["ratio"] = round(ratio, 3)
                targets.append(
                    target(f"{TITLES[name]}: quartapp / {anchor}", ratio, ">=", minimum)
                )
        idle = scenarios.get("hello", {}).get("apps", {}).get(QUARTAPP)
        if "storm" in scenarios and self.hashing is not None and idle:
            storm = scenarios["storm"]
            under = storm["apps"][QUARTAPP]
            factor = under["p99_ms"] / idle["p99_ms"] if idle["p99_ms"] else float("inf")
            logins = summary(self.storm_logins)
            storm.update(
                idle_p99_ms=idle["p99_ms"],
                p99_factor=round(factor, 3),
                logins=logins,
                hashing={
                    "argon2": {
                        "memory_kib": self.hashing.memory_kib,
                        "time_cost": self.hashing.time_cost,
                        "parallelism": self.hashing.parallelism,
                    },
                    "hashing_concurrency": self.hashing.concurrency,
                    "hash_ms": round(self.hashing.seconds * 1000, 1),
                    "cores": self.hashing.cores,
                    "login_limit_per_s": round(self.hashing.limit, 1),
                },
            )
            targets.append(
                target("login storm: /hello p99 / idle p99", factor, "<=", STORM_P99_FACTOR)
            )
        if self.rss and self.hashing is not None:
            idle_rss = self.idle_rss
            peak_rss = max(r["peak"] for r in self.rss)
            budget = idle_rss + self.hashing.concurrency * self.hashing.memory_kib * 1024
            budget += RSS_SLACK
            scenarios["flood"] = {
                "logins": summary(self.flood_logins),
                "idle_rss_mib": round(idle_rss / MIB, 1),
                "before_flood_rss_mib": round(
                    statistics.median(r["before"] for r in self.rss) / MIB, 1
                ),
                "peak_rss_mib": round(peak_rss / MIB, 1),
                "budget_mib": round(budget / MIB, 1),
                "rounds": [{k: round(v / MIB, 1) for k, v in r.items()} for r in self.rss],
            }
            targets.append(target("login flood: peak RSS MiB", peak_rss / MIB, "<=", budget / MIB))
        if "workers" in scenarios and idle:
            two = scenarios["workers"]["apps"][QUARTAPP_2W]
            two["ratio_to_1_worker"] = round(two["rps"] / idle["rps"], 3) if idle["rps"] else None
        return report


def summary(rounds: list[wrk.Result]) -> dict[str, Any]:
    """The median of each figure over the rounds, and the rounds themselves."""
    return {
        "rps": round(statistics.median(r.rps for r in rounds), 1),
        "p50_ms": round(statistics.median(r.p50_ms for r in rounds), 2),
        "p99_ms": round(statistics.median(r.p99_ms for r in rounds), 2),
        "errors": sum(r.errors for r in rounds),
        "rounds": [r.as_dict() for r in rounds],
    }


def target(name: str, value: float, op: str, bound: float) -> dict[str, Any]:
    met = value >= bound if op == ">=" else value <= bound
    return {"name": name, "value": round(value, 3), "op": op, "bound": round(bound, 3), "met": met}


@contextmanager
def sampling(server: Server) -> Iterator[list[int]]:
    """RSS of the server's process tree, sampled from /proc until the block ends.

    The list starts with one sample taken before the block: the idle figure.
    """
    samples = [server.rss_bytes()]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(RSS_SAMPLE_SECONDS):
            samples.append(server.rss_bytes())

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield samples
    finally:
        done.set()
        thread.join()


# The table


def print_report(report: dict[str, Any]) -> None:
    """The table of figures, then the targets as PASS/MISS lines."""
    rows: list[tuple[str, ...]] = [("scenario", "app", "req/s", "p50 ms", "p99 ms", "vs quartapp")]
    scenarios = report["scenarios"]
    for name, title in [
        *TITLES.items(),
        ("storm", "/hello under login storm"),
        ("workers", "/hello, 2 workers"),
    ]:
        for app, figures in scenarios.get(name, {}).get("apps", {}).items():
            ratio = figures.get("ratio")
            rows.append(
                (
                    title,
                    app,
                    f"{figures['rps']:.1f}",
                    f"{figures['p50_ms']:.1f}",
                    f"{figures['p99_ms']:.1f}",
                    f"quartapp {ratio:.2f}x" if ratio is not None else "",
                )
            )
            title = ""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    print()
    for row in rows:
        print(
            "  ".join(
                cell.rjust(w) if 2 <= i <= 4 else cell.ljust(w)
                for i, (cell, w) in enumerate(zip(row, widths, strict=True))
            ).rstrip()
        )
    print()
    for line in details(scenarios):
        print(line)
    load = report["settings"]["load_average_1min"]
    print(f"load average (1 min) {load['before']:.1f} before, {load['after']:.1f} after")
    for item in report["targets"]:
        verdict = "PASS" if item["met"] else "MISS"
        print(f"{verdict}  {item['name']}: {item['value']:.2f} {item['op']} {item['bound']:.2f}")
    for label, figures in measured(scenarios):
        if figures["errors"]:
            print(
                f"warning: {label}: {figures['errors']} errors (failed or timed-out sockets, "
                "or statuses other than the expected 200, or 302 for a login)"
            )


def measured(scenarios: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every summary of wrk runs in the report, with a label saying which it is."""
    for name, data in scenarios.items():
        for app, figures in data.get("apps", {}).items():
            yield f"{app} in {name}", figures
        if "logins" in data:
            yield f"logins in {name}", data["logins"]


def details(scenarios: Mapping[str, Any]) -> Iterator[str]:
    storm = scenarios.get("storm", {})
    if "logins" in storm:
        hashing, logins = storm["hashing"], storm["logins"]
        under = storm["apps"][QUARTAPP]["p99_ms"]
        yield (
            f"login storm: {logins['rps']:.1f} logins/s (p99 {logins['p99_ms']:.0f} ms) against "
            f"a limit of {hashing['login_limit_per_s']:.1f}/s = min(HASHING_CONCURRENCY "
            f"{hashing['hashing_concurrency']}, {hashing['cores']} cores) / "
            f"{hashing['hash_ms']:.0f} ms per hash; /hello p99 {under:.1f} ms under it, "
            f"{storm['idle_p99_ms']:.1f} ms idle"
        )
    flood = scenarios.get("flood")
    if flood:
        yield (
            f"login flood: {flood['logins']['rps']:.1f} logins/s; RSS idle "
            f"{flood['idle_rss_mib']:.0f} MiB at start ({flood['before_flood_rss_mib']:.0f} MiB "
            f"before the flood), peak {flood['peak_rss_mib']:.0f} MiB, budget "
            f"{flood['budget_mib']:.0f} MiB (idle + HASHING_CONCURRENCY x ARGON2_MEMORY_COST "
            "+ 50 MiB)"
        )
    two = scenarios.get("workers", {}).get("apps", {}).get(QUARTAPP_2W)
    if two and two.get("ratio_to_1_worker") is not None:
        yield f"2 workers: {two['ratio_to_1_worker']:.2f}x the req/s of 1 worker on /hello"
