"""What is counted: the registry, every series and its first labels.

The registry is this package's own; :mod:`.view` serves it, :mod:`.receivers`
moves it from the signals, and :func:`quartapp.metrics.init_app` times requests into
``REQUEST_DURATION`` when metrics are on.
"""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics
from quart import Quart

from . import looplag, settings
from .process import ProcessGauges

# No "_created" series: multiprocess mode has none, so one mode shows what the other does.
disable_created_metrics()

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
