"""``/metrics``: counts and timings in Prometheus's text format, through prometheus-client.

Off unless ``METRICS_TOKEN`` is set; then ``GET /metrics`` needs ``Authorization:
Bearer <token>``, and answers 404 without it, as it does when off, so a scanner learns
nothing. The hooks that time requests are installed only when it is on. It is never
served over plain HTTP: in production, a request the trusted proxy reports as plain
HTTP gets the 308 to HTTPS every page gets (:mod:`.web.security`), or, with
``HTTPS_REDIRECT`` off, a 404 even with the right token, and a warning in the log.

**Several workers.** hypercorn runs ``--workers`` separate processes, each answering
some of the scrapes. prometheus-client's multiprocess mode makes every process write
its values to files in one folder, ``PROMETHEUS_MULTIPROC_DIR``, and sums them all at
each scrape, so any worker answers for all of them. ``python -m quartapp.serve`` (the
Procfile's web line and ``make run``) creates a fresh folder per run before the
workers start and removes it afterwards. Without it (plain ``hypercorn``), each
process counts alone: right for one worker, and a warning at startup otherwise.

**What is counted.** Account events come from :mod:`.signals`; requests are timed by
route template (``/account/sessions``, never a raw path, so the label set stays small)
and status class (``2xx``); database errors and a full hashing queue from the 503
handler (:mod:`.web.errors`). The hashing queue's depth is a per-process gauge, set whenever
the line changes (a signal from the hashing service), summed over the live workers. Mail
comes from the sender's signals: messages sent and given up, and the outbox's depth,
which every sender counts in the one shared table (the latest count is shown). Second
factors and passkeys are counted by method or ceremony and result, and every worker's
process figures are shown with its ``pid`` (:mod:`.process`).

**Several instances.** Every series carries an ``instance`` label (:mod:`.instance`):
``METRICS_INSTANCE`` or Heroku's ``DYNO``, else the address the scrape reached. Where
Prometheus reaches each instance, it scrapes ``/metrics``; where only a router is
reachable, one worker per instance pushes to a Pushgateway (:mod:`.push`).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import multiprocessing
import os
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextvars import ContextVar
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client import multiprocess as prometheus_multiprocess
from quart import Blueprint, Quart, abort, current_app, has_request_context, request
from quart.typing import ResponseReturnValue
from quart.wrappers import Response

from .. import signals
from ..web import security
from . import instance, looplag, process, settings
from .process import REFRESH, ProcessGauges
from .push import Pusher

bp = Blueprint("metrics", __name__)
# No "_created" series: multiprocess mode has none, so one mode shows what the other does.
disable_created_metrics()
log = logging.getLogger("quartapp.metrics")

MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"
# The routes' templates are few; a request no route matched (a 404 for any path, a
# refused Host) gets this one label instead of its path.
UNMATCHED = "<unmatched>"
# Pages take milliseconds; a login waits for argon2 (~0.1 s) and perhaps in line.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

# Registered on a registry of their own, not the global default, so that this module
# imported twice in a process (the test suite) never registers a name twice, and so
# that a scrape without multiprocess mode shows only these.
REGISTRY = CollectorRegistry(auto_describe=True)
LOGINS = Counter(
    "quartapp_logins",
    "Login attempts through the login form, by result.",
    ["result"],
    registry=REGISTRY,
)
LOGOUTS = Counter("quartapp_logouts", "Logouts.", registry=REGISTRY)
SESSIONS_ENDED = Counter(
    "quartapp_sessions_ended",
    "Logins ended from elsewhere: the sessions page, revoke-sessions, a password change.",
    registry=REGISTRY,
)
PASSWORD_CHANGES = Counter(
    "quartapp_password_changes", "Passwords changed through the account page.", registry=REGISTRY
)
SECOND_FACTOR_FAILURES = Counter(
    "quartapp_second_factor_failures",
    "Wrong second-factor codes, at a login's code step or at /login/confirm.",
    registry=REGISTRY,
)
REQUEST_DURATION = Histogram(
    "quartapp_request_duration_seconds",
    "Time from the first request hook to the response, by route template and status class.",
    ["route", "status"],
    buckets=BUCKETS,
    registry=REGISTRY,
)
HASHING_QUEUE_DEPTH = Gauge(
    "quartapp_hashing_queue_depth",
    "Logins hashing or waiting for a hashing slot, summed over the live workers.",
    registry=REGISTRY,
    multiprocess_mode="livesum",
)
DB_ERRORS = Counter(
    "quartapp_db_errors",
    "Requests that got the 503 page because the database failed or timed out.",
    registry=REGISTRY,
)
MAIL_SENT = Counter(
    "quartapp_mail_sent",
    "Messages delivered from the outbox (SMTP accepted them, or file:/console: wrote them).",
    registry=REGISTRY,
)
MAIL_FAILED = Counter(
    "quartapp_mail_failed",
    "Messages given up: refused for good (5xx) or out of attempts (MAIL_MAX_ATTEMPTS)."
    " Attempts that will be retried are not counted; a growing outbox depth shows them.",
    registry=REGISTRY,
)
MAIL_OUTBOX_DEPTH = Gauge(
    "quartapp_mail_outbox_depth",
    "Messages in the outbox not yet sent nor given up, as a sender last counted them.",
    registry=REGISTRY,
    # One table for every process: the latest count of any live one, not their sum.
    multiprocess_mode="livemostrecent",
)
SECOND_FACTOR = Counter(
    "quartapp_second_factor",
    "Second-factor codes checked, at a login's code step or to confirm a login (re-auth),"
    " by method (totp, recovery-code) and result (ok, failed).",
    ["method", "result"],
    registry=REGISTRY,
)
PASSKEY = Counter(
    "quartapp_passkey",
    "Passkey ceremonies by ceremony (registration, authentication: a sign-in or a"
    " confirmation) and result (ok, failed).",
    ["ceremony", "result"],
    registry=REGISTRY,
)
PROCESS = ProcessGauges(REGISTRY)
REGISTRY.register(looplag.LOOP_LAG)
RESULTS = ("success", "failure", "throttled", "queue_full")
for _result in RESULTS:  # every result shows from the first scrape, at 0
    LOGINS.labels(_result)
OUTCOMES = ("ok", "failed")
for _outcome in OUTCOMES:
    for _method in ("totp", "recovery-code"):
        SECOND_FACTOR.labels(_method, _outcome)
    for _ceremony in ("registration", "authentication"):
        PASSKEY.labels(_ceremony, _outcome)


def enabled(app: Any) -> bool:
    """Whether ``app`` (a signal's sender: None from the CLI) serves metrics."""
    return isinstance(app, Quart) and settings.of(app).enabled


def multiprocess_dir() -> str | None:
    """The folder the workers share their values through, if this run has one."""
    return os.environ.get(MULTIPROCESS_DIR) or None


@bp.get("/metrics")
async def metrics() -> ResponseReturnValue:
    """The metrics, for a client that sends the token; 404 for anyone else."""
    token = settings.current().metrics_token
    if not token:
        abort(404)
    sent = request.headers.get("Authorization", "")
    scheme, _, credentials = sent.partition(" ")
    # compare_digest takes as long whatever the first wrong byte, and bytes are used
    # because it refuses str with non-ASCII characters.
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        credentials.strip().encode(), token.encode()
    ):
        abort(404)
    if security.over_plain_http():
        # Only a scraper with the token gets here: it is the operator's, so say why.
        log.warning(
            "refused /metrics over plain HTTP (the proxy sent X-Forwarded-Proto: http); "
            "scrape it over https://, since the token must not cross the network in clear"
        )
        abort(404)
    PROCESS.refresh()
    name = instance.of(settings.current().metrics_instance, request.scope.get("server"))
    read = process.exposed(instance.aggregated(REGISTRY, multiprocess_dir()))
    registry = instance.labelled(read, name)
    return Response(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)


# When this request's first hook ran. A context variable rather than ``g``: each request
# runs in a task of its own, and reading one costs a tenth of a context-local lookup.
_started: ContextVar[float | None] = ContextVar("quartapp_metrics_started", default=None)
# The histogram's child per (route, status class): ``labels()`` builds and locks on
# every call, and the set of pairs is small (routes x five classes).
_durations: dict[tuple[str, int], Any] = {}


async def start_timer() -> None:
    _started.set(time.perf_counter())


def observer() -> Callable[[Response], Awaitable[Response]]:
    """The after-request hook that times requests."""

    async def observe(response: Response) -> Response:
        """Time the request by route template and status class."""
        started = _started.get()
        if started is not None:
            rule = request.url_rule
            route = rule.rule if rule is not None else UNMATCHED
            key = (route, response.status_code // 100)
            child = _durations.get(key)
            if child is None:
                child = _durations[key] = REQUEST_DURATION.labels(route, f"{key[1]}xx")
            child.observe(time.perf_counter() - started)
        return response

    return observe


async def forget_this_process() -> None:
    """At shutdown, take this worker's gauge out of the live sum."""
    HASHING_QUEUE_DEPTH.set(0)
    folder = multiprocess_dir()
    if folder:
        prometheus_multiprocess.mark_process_dead(os.getpid(), folder)


@signals.hashing_queue_changed.connect
def _hashing_queue_changed(sender: Any, *, depth: int, **_: Any) -> None:
    """Keep this process's hashing-queue gauge at the line's depth, as it changes."""
    if enabled(sender):
        HASHING_QUEUE_DEPTH.set(depth)


@signals.database_failed.connect
def _database_failed(sender: Any, **_: Any) -> None:
    """Count a request refused because the database failed (the 503 page)."""
    if enabled(sender):
        DB_ERRORS.inc()


@signals.queue_full.connect
def _queue_full(sender: Any, *, endpoint: str | None, **_: Any) -> None:
    """Count a login turned away because every hashing place was taken."""
    if enabled(sender) and endpoint == "auth.login":
        LOGINS.labels("queue_full").inc()


@signals.user_logged_in.connect
def _logged_in(sender: Any, **_: Any) -> None:
    if enabled(sender):
        LOGINS.labels("success").inc()


@signals.login_failed.connect
def _login_failed(sender: Any, **_: Any) -> None:
    if enabled(sender):
        LOGINS.labels("failure").inc()


@signals.locked_out.connect
def _locked_out(sender: Any, **_: Any) -> None:
    # The password change form is throttled too; only the login form's count here.
    if enabled(sender) and has_request_context() and request.endpoint == "auth.login":
        LOGINS.labels("throttled").inc()


@signals.user_logged_out.connect
def _logged_out(sender: Any, **_: Any) -> None:
    if enabled(sender):
        LOGOUTS.inc()


@signals.session_ended.connect
def _session_ended(sender: Any, *, count: int, **_: Any) -> None:
    if enabled(sender):
        SESSIONS_ENDED.inc(count)


@signals.password_changed.connect
def _password_changed(sender: Any, **_: Any) -> None:
    if enabled(sender):
        PASSWORD_CHANGES.inc()


@signals.second_factor_failed.connect
def _second_factor_failed(sender: Any, **_: Any) -> None:
    if enabled(sender):
        SECOND_FACTOR_FAILURES.inc()


@signals.second_factor_succeeded.connect
def _second_factor_succeeded(sender: Any, *, method: str, **_: Any) -> None:
    if enabled(sender):
        SECOND_FACTOR.labels(method, "ok").inc()


@signals.second_factor_failed.connect
def _second_factor_tried(sender: Any, *, method: str, **_: Any) -> None:
    if enabled(sender):
        SECOND_FACTOR.labels(method, "failed").inc()


@signals.passkey_added.connect
def _passkey_added(sender: Any, **_: Any) -> None:
    if enabled(sender):
        PASSKEY.labels("registration", "ok").inc()


@signals.passkey_registration_failed.connect
def _passkey_registration_failed(sender: Any, **_: Any) -> None:
    if enabled(sender):
        PASSKEY.labels("registration", "failed").inc()


@signals.passkey_signed_in.connect
def _passkey_signed_in(sender: Any, **_: Any) -> None:
    if enabled(sender):
        PASSKEY.labels("authentication", "ok").inc()


@signals.reauthenticated.connect
def _reauthenticated(sender: Any, *, method: str, **_: Any) -> None:
    # A passkey sign-in sends passkey_signed_in; a confirmation with one, only this.
    if enabled(sender) and method == "passkey":
        PASSKEY.labels("authentication", "ok").inc()


@signals.passkey_failed.connect
def _passkey_failed(sender: Any, **_: Any) -> None:
    if enabled(sender):
        PASSKEY.labels("authentication", "failed").inc()


@signals.mail_sent.connect
def _mail_sent(sender: Any, **_: Any) -> None:
    if enabled(sender):
        MAIL_SENT.inc()


@signals.mail_failed.connect
def _mail_failed(sender: Any, **_: Any) -> None:
    if enabled(sender):
        MAIL_FAILED.inc()


@signals.mail_outbox_depth.connect
def _mail_outbox_depth(sender: Any, *, depth: int, **_: Any) -> None:
    if enabled(sender):
        MAIL_OUTBOX_DEPTH.set(depth)


async def _refreshing() -> None:
    """Keep this worker's process figures current for whichever worker is scraped."""
    while True:
        PROCESS.refresh()
        await asyncio.sleep(REFRESH)


async def _serving() -> AsyncGenerator[None, None]:
    """While serving: refresh the process figures, and push if ``METRICS_PUSH_URL`` is set."""
    config = settings.of(current_app)
    folder = multiprocess_dir()
    tasks = [asyncio.create_task(_refreshing())]
    pusher = None
    if config.metrics_push_url:

        def read() -> CollectorRegistry:
            PROCESS.refresh()
            return process.exposed(instance.aggregated(REGISTRY, folder))

        # No request here to name the address: the host name stands in.
        name = instance.of(config.metrics_instance)
        pusher = Pusher(config.metrics_push_url, name, read, folder)
        tasks.append(asyncio.create_task(pusher.run(config.metrics_push_interval)))
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if pusher is not None:
            await pusher.stop()


def init_app(app: Quart) -> None:
    """Serve ``/metrics`` (404 while off) and, when on, time every request."""
    app.register_blueprint(bp)
    if not settings.of(app).enabled:
        return
    # First of all the hooks, so the time includes the host check and the others.
    app.before_request_funcs.setdefault(None, []).insert(0, start_timer)
    # Quart runs after-request hooks last-registered first: at the front, this runs last.
    app.after_request_funcs.setdefault(None, []).insert(0, observer())
    app.while_serving(_serving)
    app.after_serving(forget_this_process)
    looplag.init_app(app)
    if not multiprocess_dir() and multiprocessing.parent_process() is not None:
        log.warning(
            "METRICS_TOKEN is set but %s is not: /metrics counts only the worker that "
            "answers; serve with `python -m quartapp.serve` (as the Procfile does) for "
            "totals over every worker",
            MULTIPROCESS_DIR,
        )
