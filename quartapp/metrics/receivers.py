"""The signals' receivers: each account, mail and hashing event moves its series.

Connected when this module is imported (by :mod:`quartapp.metrics`); each one counts
only for an app that serves metrics (``enabled``), so the CLI and an app with metrics
off count nothing.
"""

from __future__ import annotations

from typing import Any

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
