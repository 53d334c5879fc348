"""The apps, the scenarios and one run of them: servers up, rounds of wrk, servers down.

Every app runs with one worker on 127.0.0.1. Each round measures every app in every
scenario once, so a slow minute on the machine hits all of them alike. ``report.py``
turns the rounds into medians, ratios and the targets of issue 13.
"""

from __future__ import annotations

import functools
import os
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, TypeVar

from bench import many, measures, pg, servers, signins, wrk
from bench.measures import Hashing
from bench.servers import BenchError, Server

T = TypeVar("T")

QUARTAPP = "quartapp"
QUARTAPP_2W = "quartapp --workers 2"
# quartapp with its hashing threads at the event loop's priority, as before HASHING_NICE:
# the sign-in storm's anchor, measured beside quartapp as shipped in the same round.
QUARTAPP_NICE0 = "quartapp HASHING_NICE=0"
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
ALL_SCENARIOS = ("hello", "home", "login", "storm", "signins", "flood", "workers", "pg", "many")
# The many-users scenario on PostgreSQL, skipped alone when PostgreSQL is not here.
MANY_PG = "many-pg"
# The sign-in storm's users, one per client: not the bench user, since each login past
# LOGINS_PER_USER_MAX ends the user's oldest, which must not be the one wrk measures.
STORM_USERS = [f"storm{number}" for number in range(1, signins.CLIENTS + 1)]
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
    # The many-users scenario's wrk runs: as long as load.seconds, or longer.
    many_seconds: int = many.SECONDS
    many_users: int = many.USERS
    # A smoke run (--quick): the apps of a step are measured at once, and the many users
    # sign in to every app at once. Its figures are checked for being there, not read;
    # a real run measures one app at a time, so that none competes with another.
    together: bool = False


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
        # The sign-in storm's tallies, per app one per round, and its users per app.
        self.signins: dict[str, list[signins.Tally]] = {}
        self.storm_users: dict[str, list[tuple[str, str]]] = {}
        self.hashing: Hashing | None = None
        self.load_before = 0.0
        self.pg: pg.Cluster | None = None
        self.skipped: dict[str, str] = {}  # scenario: why it did not run
        self.many_cookies: dict[str, Path] = {}  # app: its many users' cookie file
        self.many_sign_in: dict[str, float] = {}  # app: seconds the sign-ins took

    def wanted(self, app: str) -> bool:
        return self.settings.apps is None or app in self.settings.apps

    def scenarios(self) -> list[str]:
        return [name for name in self.settings.scenarios if name not in self.skipped]

    def steps(self) -> list[str]:
        """The scenarios of one round, with quartapp's idle /hello first if they need it
        and the hello scenario is not there to give it."""
        scenarios = self.scenarios()
        if {"storm", "signins", "workers"} & set(scenarios) and "hello" not in scenarios:
            scenarios.insert(0, "idle")
        return scenarios

    def apps_needed(self) -> list[str]:
        needed = []
        for name in self.scenarios():
            if name in SCENARIOS:
                needed += [app for app in SCENARIOS[name].apps if self.wanted(app)]
            elif name == "pg":
                needed += list(pg.APPS)
            elif name == "many":
                needed += [app for app in (QUARTAPP, FLASK_LOGIN) if self.wanted(app)]
                if MANY_PG not in self.skipped:
                    needed += list(pg.APPS)
            else:
                needed.append(QUARTAPP)
            if name == "workers":
                needed.append(QUARTAPP_2W)
            if name == "signins":
                needed.append(QUARTAPP_NICE0)
        return list(dict.fromkeys(needed))

    def measure(self) -> None:
        """Start the servers, run every round, stop the servers."""
        settings = self.settings
        load = settings.load
        if "pg" in settings.scenarios and (why := pg.unavailable()):
            self.skipped["pg"] = why
            print(f"pg: skipped, the PostgreSQL scenario cannot run here: {why}", flush=True)
        if "many" in settings.scenarios and (why := pg.unavailable()):
            self.skipped[MANY_PG] = why
            print(f"many: on SQLite only, PostgreSQL cannot run here: {why}", flush=True)
        print(
            f"bench: {settings.rounds} round(s) of wrk -t{load.threads} -c{load.connections} "
            f"-d{load.seconds}s, 1 worker per app, {os.cpu_count()} cores, "
            f"scenarios {', '.join(self.scenarios()) or 'none'}",
            flush=True,
        )
        self.load_before = os.getloadavg()[0]
        if {"storm", "flood"} & set(self.scenarios()):
            self.hashing = measures.measure_hashing()
        with tempfile.TemporaryDirectory(prefix="quartapp-bench-") as tmp, self.serving(Path(tmp)):
            for number in range(1, settings.rounds + 1):
                started = time.monotonic()
                for name in self.steps():
                    getattr(self, f"round_{name}")()
                print(f"round {number}: {time.monotonic() - started:.0f} s", flush=True)

    # Servers

    @contextmanager
    def serving(self, tmp: Path) -> Iterator[None]:
        """Start every server the chosen scenarios need; always stop them all."""
        logs = tmp / "logs"
        logs.mkdir()
        with ExitStack() as stack:
            try:
                stack.callback(lambda: servers.stop_all(self.servers.values()))
                self.start_all(stack, tmp, logs)
                for app, server in self.servers.items():
                    server.wait_ready("/healthz" if app.startswith(QUARTAPP) else "/")
                for app in self.credentials:
                    # A first login checks each app's form works before anything is timed.
                    self.log_in(app)
                if QUARTAPP in self.servers:
                    self.idle_rss = self.servers[QUARTAPP].rss_bytes()
                if "many" in self.scenarios():
                    self.sign_in_many(tmp)
                yield
            except BaseException:
                for server in self.servers.values():
                    if server.process.poll() is not None:
                        print(f"{server.name} log:\n{server.log_tail()}", file=sys.stderr)
                raise

    def start_all(self, stack: ExitStack, tmp: Path, logs: Path) -> None:
        """Start every app, each in a thread: mostly Python processes starting (the
        CLI's ``users create``, the release line), which wait on nothing of each other's.
        The PostgreSQL apps start once the cluster is up, the others meanwhile."""
        apps = self.apps_needed()
        pg_apps = [app for app in apps if app in pg.APPS]
        started: dict[str, Future[Server]] = {}
        with ThreadPoolExecutor(max(1, len(apps))) as pool:
            for app in apps:
                if app not in pg_apps:
                    started[app] = pool.submit(self.start, app, tmp, logs)
            try:
                if pg_apps:
                    self.pg = stack.enter_context(pg.cluster(pg_apps, logs))
                    # The servers stop before the cluster does (the stack unwinds last
                    # in, first out; stopping one already stopped does nothing).
                    stack.callback(lambda: servers.stop_all(self.servers.values()))
                    for app in pg_apps:
                        started[app] = pool.submit(self.start, app, tmp, logs)
            finally:
                # Every server that started is stopped with the others, even when
                # another did not start.
                errors = []
                for app in apps:
                    if app not in started:
                        continue
                    try:
                        self.servers[app] = started[app].result()
                    except BaseException as error:
                        errors.append(error)
                if errors:
                    raise errors[0]

    def start(self, app: str, tmp: Path, logs: Path) -> Server:
        bind = ["--bind", "127.0.0.1:{port}"]
        gunicorn = [str(servers.BIN / "gunicorn"), "--workers", "1", "--worker-class", "sync"]
        slug = app.replace(" ", "").replace("-", "_")
        if app in pg.APPS:
            assert self.pg is not None
            server, self.credentials[app] = pg.start(app, self.pg, tmp / slug, logs)
            return server
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
        password = servers.create_user(env, servers.BENCH_USER)
        self.credentials[app] = (servers.BENCH_USER, password)
        if app == QUARTAPP_NICE0:
            env["QUARTAPP_HASHING_NICE"] = "0"
        if app in (QUARTAPP, QUARTAPP_NICE0) and "signins" in self.settings.scenarios:
            users = [(name, servers.create_user(env, name)) for name in STORM_USERS]
            self.storm_users[app] = users
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

    def measure_apps(
        self, scenario: str, apps: list[str], run: Callable[[str], Callable[[], wrk.Result]]
    ) -> None:
        """Record ``run(app)()`` for each app: one after another, or at once in a smoke
        run. ``run(app)`` does what comes before the measure (a login), in turn."""
        runs = [run(app) for app in apps]
        for app, result in zip(apps, self.each(runs), strict=True):
            self.record(scenario, app, result)

    def each(self, calls: list[Callable[[], T]]) -> list[T]:
        """Each call's result: one after another, or at once in a smoke run (``together``)."""
        if not self.settings.together:
            return [call() for call in calls]
        with ThreadPoolExecutor(max(1, len(calls))) as pool:
            return [future.result() for future in [pool.submit(call) for call in calls]]

    def round_get(self, scenario: str) -> None:
        path, apps, logged_in = SCENARIOS[scenario]

        def run(app: str) -> Callable[[], wrk.Result]:
            cookies = self.log_in(app) if logged_in else None
            return lambda: self.get(app, path, cookies)

        self.measure_apps(scenario, list(filter(self.wanted, apps)), run)

    def round_hello(self) -> None:
        self.round_get("hello")

    def round_home(self) -> None:
        self.round_get("home")

    def round_login(self) -> None:
        self.round_get("login")

    def round_idle(self) -> None:
        """quartapp's /hello alone, for the storm and 2 workers when "hello" is not run."""
        self.record("hello", QUARTAPP, self.get(QUARTAPP, "/hello", self.log_in(QUARTAPP)))

    def round_pg(self) -> None:
        """Logged-in /hello on each PostgreSQL app, at each delay of the proxy."""
        assert self.pg is not None

        def run(app: str) -> Callable[[], wrk.Result]:
            cookies = self.log_in(app)
            return lambda: self.get(app, "/hello", cookies)

        for delay in pg.DELAYS_MS:
            self.pg.proxy.set_delay(delay)
            self.measure_apps(pg.scenario(delay), list(pg.APPS), run)
        self.pg.proxy.set_delay(0)

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

    def round_signins(self) -> None:
        """/hello measured by wrk while 8 clients sign in through the form over and over,
        on quartapp as shipped and on quartapp with its hashes at the loop's priority.

        The clients start half a second before wrk and stop when it ends, and their
        logins per second are counted over wrk's run only.
        """
        for app in (QUARTAPP, QUARTAPP_NICE0):
            server = self.servers[app]
            hello_headers = {"Cookie": servers.cookie_header(self.log_in(app))}
            with signins.SignIns(server.url, self.storm_users[app]) as storm:
                time.sleep(0.5)
                started = time.monotonic()
                hello = wrk.run(server.url + "/hello", self.settings.load, hello_headers)
                storm.tally.window = (started, time.monotonic())
            self.signins.setdefault(app, []).append(storm.tally)
            self.record("signins", app, hello)

    def round_flood(self) -> None:
        """A flood of logins on every connection, with the server's memory sampled."""
        body, headers = self.login_form()
        server = self.servers[QUARTAPP]
        with measures.sampling(server) as samples:
            before = samples[0]
            result = wrk.run(
                server.url + "/login", self.settings.load, headers, form=body, expect=LOGGED_IN
            )
        self.flood_logins.append(result)
        self.rss.append({"before": before, "peak": max(samples)})

    def sign_in_many(self, tmp: Path) -> None:
        """Add the many users to each app of the scenario and sign them all in."""
        names = many.usernames(self.settings.many_users)
        apps = [app for app in (QUARTAPP, FLASK_LOGIN, *pg.APPS) if app in self.servers]

        def sign_in(app: str) -> None:
            source, password = self.credentials[app]
            if app in pg.APPS:
                assert self.pg is not None
                many.seed_postgres(self.pg, app, source, count=len(names))
            else:
                slug = app.replace(" ", "").replace("-", "_")
                path = tmp / slug / "quartapp.db" if app == QUARTAPP else tmp / f"{slug}.db"
                many.seed_sqlite(path, source, created_at=app == QUARTAPP, count=len(names))
            self.many_cookies[app], took = many.sign_in_all(
                self.servers[app], password, names, tmp
            )
            self.many_sign_in[app] = took
            print(f"many: {len(names)} users signed in to {app} in {took:.0f} s", flush=True)

        self.each([functools.partial(sign_in, app) for app in apps])

    def round_many(self) -> None:
        """Logged-in /hello, each request as the next of the many users."""
        load = self.settings.load
        load = wrk.Load(load.threads, load.connections, self.settings.many_seconds)

        def run(app: str) -> Callable[[], wrk.Result]:
            url = self.servers[app].url + "/hello"
            return lambda: wrk.run(url, load, cookies=self.many_cookies[app])

        local = [app for app in (QUARTAPP, FLASK_LOGIN) if app in self.many_cookies]
        self.measure_apps(many.scenario(None), local, run)
        if self.pg is None or MANY_PG in self.skipped:
            return
        for delay in pg.DELAYS_MS:
            self.pg.proxy.set_delay(delay)
            self.measure_apps(many.scenario(delay), list(pg.APPS), run)
        self.pg.proxy.set_delay(0)

    def round_workers(self) -> None:
        """quartapp's /hello with two workers, to set against one."""
        cookies = self.log_in(QUARTAPP_2W)
        self.record("workers", QUARTAPP_2W, self.get(QUARTAPP_2W, "/hello", cookies))

    # Figures
