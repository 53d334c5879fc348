"""The signals' receivers: each account, mail and hashing event moves its series.

Connected when this module is imported (by :mod:`quartapp.metrics`); each one counts
only for an app that serves metrics (``enabled``), so the CLI and an app with metrics
off count nothing. Most signals map to one series and one label set, so they are a
table (:data:`COUNTED`, :data:`GAUGED`); the few that filter or read a value of their
own are written out below it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from blinker import Signal
from prometheus_client import Counter, Gauge
from quart import has_request_context, request

from .. import signals
from .definitions import (
    DB_ERRORS,
    HASHING_QUEUE_DEPTH,
    LOGINS,
    LOGOUTS,
    MAIL_FAILED,
    MAIL_OUTBOX_DEPTH,
    MAIL_SENT,
    PASSKEY,
    PASSWORD_CHANGES,
    SECOND_FACTOR,
    SECOND_FACTOR_FAILURES,
    SESSIONS_ENDED,
    enabled,
)

# Each of these signals adds one to its series (with these labels, if any).
COUNTED: tuple[tuple[Signal, Counter, tuple[str, ...]], ...] = (
    # A request refused because the database failed (the 503 page).
    (signals.database_failed, DB_ERRORS, ()),
    (signals.user_logged_in, LOGINS, ("success",)),
    (signals.login_failed, LOGINS, ("failure",)),
    (signals.user_logged_out, LOGOUTS, ()),
    (signals.password_changed, PASSWORD_CHANGES, ()),
    (signals.second_factor_failed, SECOND_FACTOR_FAILURES, ()),
    (signals.passkey_added, PASSKEY, ("registration", "ok")),
    (signals.passkey_registration_failed, PASSKEY, ("registration", "failed")),
    (signals.passkey_signed_in, PASSKEY, ("authentication", "ok")),
    (signals.passkey_failed, PASSKEY, ("authentication", "failed")),
    (signals.mail_sent, MAIL_SENT, ()),
    (signals.mail_failed, MAIL_FAILED, ()),
)

# Each of these signals sends a ``depth``, which its gauge takes: this process's
# hashing line and the outbox's unsent mail, as they change.
GAUGED: tuple[tuple[Signal, Gauge], ...] = (
    (signals.hashing_queue_changed, HASHING_QUEUE_DEPTH),
    (signals.mail_outbox_depth, MAIL_OUTBOX_DEPTH),
)


def _counter(series: Counter, labels: tuple[str, ...]) -> Callable[..., None]:
    def count(sender: Any, **_: Any) -> None:
        if enabled(sender):
            (series.labels(*labels) if labels else series).inc()

    return count


def _gauge(series: Gauge) -> Callable[..., None]:
    def track(sender: Any, *, depth: int, **_: Any) -> None:
        if enabled(sender):
            series.set(depth)

    return track


# weak=False: the receivers made here have no other reference, and blinker keeps weak ones.
for _signal, _series, _labels in COUNTED:
    _signal.connect(_counter(_series, _labels), weak=False)
for _signal, _gauged in GAUGED:
    _signal.connect(_gauge(_gauged), weak=False)


@signals.queue_full.connect
def _queue_full(sender: Any, *, endpoint: str | None, **_: Any) -> None:
    """Count a login turned away because every hashing place was taken."""
    if enabled(sender) and endpoint == "auth.login":
        LOGINS.labels("queue_full").inc()


@signals.locked_out.connect
def _locked_out(sender: Any, **_: Any) -> None:
    # The password change form is throttled too; only the login form's count here.
    if enabled(sender) and has_request_context() and request.endpoint == "auth.login":
        LOGINS.labels("throttled").inc()


@signals.session_ended.connect
def _session_ended(sender: Any, *, count: int, **_: Any) -> None:
    if enabled(sender):
        SESSIONS_ENDED.inc(count)


@signals.second_factor_succeeded.connect
def _second_factor_succeeded(sender: Any, *, method: str, **_: Any) -> None:
    if enabled(sender):
        SECOND_FACTOR.labels(method, "ok").inc()


@signals.second_factor_failed.connect
def _second_factor_tried(sender: Any, *, method: str, **_: Any) -> None:
    if enabled(sender):
        SECOND_FACTOR.labels(method, "failed").inc()


@signals.reauthenticated.connect
def _reauthenticated(sender: Any, *, method: str, **_: Any) -> None:
    # A passkey sign-in sends passkey_signed_in; a confirmation with one, only this.
    if enabled(sender) and method == "passkey":
        PASSKEY.labels("authentication", "ok").inc()
