"""The audit: one structured log line per authentication event, and each account's
security activity.

Lines go to the ``quartapp.audit`` logger as JSON, with the event, the username and
the client address, and never a password. A typed username that could not be one (a
password typed into the wrong box, say) is recorded only as a keyed hash.

Most events are also stored for the account's owner (``events``: the
``security_events`` table of ``models``), which the account overview shows and the data
export includes.

The audit subscribes to the account signals (:mod:`quartapp.signals`), and nothing
calls it: :func:`init_app` registers its overview row, its pruner and its part of the
export with auth's registry.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING

from blinker import Signal
from quart import has_app_context, has_request_context, request

from .. import signals
from ..auth import settings as auth_settings
from ..auth.users import USERNAME_PATTERN
from . import events

if TYPE_CHECKING:
    from quart import Quart

logger = logging.getLogger("quartapp.audit")


def _named_audit(record: logging.LogRecord) -> bool:
    """Keep the lines' ``INFO in audit:`` now that the code is a package's ``__init__``.

    Quart's handler writes ``%(module)s``, which would now read ``__init__``; tools that
    pick the audit lines out of the log match on ``in audit:``.
    """
    record.module = "audit"
    return True


logger.addFilter(_named_audit)

# Keeps hashes of this process's log lines comparable when there is no app to take
# a key from (the app always has one; this only keeps the function total).
_PROCESS_KEY = secrets.token_bytes(32)
# Domain separation: the SECRET_KEY also signs session cookies, and itsdangerous derives
# its signing key as HMAC(SECRET_KEY, salt). Without a prefix, someone who types the
# salt as a username would find part of that derived key in the log.
_HASH_CONTEXT = b"quartapp.audit.username\0"


def log(event: str, username: str | None, **fields: object) -> None:
    """Record ``event`` for ``username`` with the current client's address."""
    record: dict[str, object] = {"event": event, "user": loggable_username(username)}
    if has_request_context():
        record["addr"] = request.remote_addr
    elif "addr" not in fields:
        record["addr"] = "cli"
    record.update(fields)
    logger.info(json.dumps(record, sort_keys=True, default=str))


def loggable_username(username: str | None) -> str | None:
    """``username`` as the log may show it: its stored form, or a hash if it is not one.

    What a user types into the username box is sometimes their password. Anything that
    cannot be a username (wrong characters, too long) is replaced by
    ``sha256:`` and the first 12 hex digits of an HMAC-SHA256 keyed with SECRET_KEY.
    Equal typos give equal hashes, so repeated attempts still line up in the log; the
    key means a reader of the log alone cannot confirm guesses by hashing a password
    dictionary, which a plain hash would allow. 48 bits are plenty to tell apart the few
    distinct typos of one incident.
    """
    if username is None:
        return None
    normalized = username.lower()
    if has_app_context():
        config = auth_settings.current()
        limit, key = config.username_max_length, config.site.secret_key.encode()
    else:
        limit, key = auth_settings.USERNAME_MAX_LENGTH, _PROCESS_KEY
    if len(normalized) <= limit and USERNAME_PATTERN.fullmatch(normalized):
        return normalized
    digest = hmac.new(
        key, _HASH_CONTEXT + username.encode("utf-8", "surrogatepass"), hashlib.sha256
    ).hexdigest()
    return f"sha256:{digest[:12]}"


# Each signal as the line it has always been: the event's name, and the line's name for
# each of the signal's fields (a field not named here keeps its own; ``username`` is
# the line's ``user``). One receiver serves them all (:func:`_receiver`).
EVENTS: tuple[tuple[Signal, str, dict[str, str]], ...] = (
    (signals.user_logged_in, "login_ok", {}),
    (signals.login_failed, "login_failed", {}),
    (signals.locked_out, "lockout", {}),
    (signals.user_logged_out, "logout", {}),
    (signals.password_changed, "password_changed", {}),
    (signals.password_change_failed, "password_change_failed", {}),
    (signals.reauthenticated, "reauthenticated", {}),
    (signals.two_factor_enabled, "two_factor_enabled", {}),
    (signals.two_factor_disabled, "two_factor_disabled", {}),
    (signals.second_factor_succeeded, "two_factor_ok", {}),
    (signals.second_factor_failed, "two_factor_failed", {}),
    (signals.recovery_code_used, "recovery_code_used", {}),
    (signals.recovery_codes_renewed, "recovery_codes_created", {}),
    (signals.passkey_added, "passkey_added", {"name": "passkey"}),
    (signals.passkey_registration_failed, "passkey_registration_failed", {}),
    (signals.passkey_removed, "passkey_removed", {"name": "passkey"}),
    (signals.passkey_renamed, "passkey_renamed", {"new": "passkey", "old": "old_name"}),
    (signals.passkey_signed_in, "passkey_login_ok", {"name": "passkey"}),
    (signals.passkey_failed, "passkey_login_failed", {}),
    (signals.passkey_clone_refused, "passkey_clone_refused", {"name": "passkey"}),
    (signals.user_created, "user_created", {}),
    # Only a keyed pseudonym of a deleted account's name (auth.flows.pseudonym) stays.
    (signals.user_deleted, "user_deleted", {"pseudonym": "user"}),
    (signals.unlocked, "unlocked", {}),
    (signals.device_code_created, "device_code_created", {}),
    (signals.device_trusted, "device_trusted", {}),
    (signals.device_code_locked_out, "device_code_locked_out", {}),
)


# The log's events that are stored for the account's owner, by the kind stored
# (events.TEXTS). Not lockouts: one row per refused request would let a flood fill the
# table. Not a passkey or second step's success: its login is stored already.
STORED = {
    "user_created": "account_created",
    "login_ok": "signed_in",
    "login_failed": "sign_in_failed",
    "logout": "signed_out",
    "session_ended": "session_ended",
    "sessions_revoked": "sessions_ended",
    "password_changed": "password_changed",
    "password_change_failed": "password_change_failed",
    "reauthenticated": "reauthenticated",
    "two_factor_enabled": "two_factor_enabled",
    "two_factor_disabled": "two_factor_disabled",
    "two_factor_failed": "second_factor_failed",
    "recovery_code_used": "recovery_code_used",
    "recovery_codes_created": "recovery_codes_renewed",
    "passkey_added": "passkey_added",
    "passkey_removed": "passkey_removed",
    "passkey_renamed": "passkey_renamed",
    "passkey_login_failed": "passkey_failed",
    "passkey_clone_refused": "passkey_clone_refused",
    "device_code_created": "device_code_created",
    "device_trusted": "device_trusted",
}


def _receiver(event: str, names: dict[str, str]) -> Callable[..., None]:
    def receive(_sender: object, *, username: str | None = None, **fields: object) -> None:
        log(event, username, **{names.get(name, name): value for name, value in fields.items()})
        _store(event, username)

    return receive


def _store(event: str, username: str | None) -> None:
    kind = STORED.get(event)
    if kind is not None:
        events.record(kind, username)


# Kept alive here: blinker holds receivers weakly.
_RECEIVERS = [_receiver(event, names) for _, event, names in EVENTS]
for _row, _receive in zip(EVENTS, _RECEIVERS, strict=True):
    _row[0].connect(_receive)


@signals.session_ended.connect
def _session_ended(_sender: object, *, username: str, count: int, everywhere: bool) -> None:
    if everywhere:
        log("sessions_revoked", username, sessions_ended=count)
        _store("sessions_revoked", username)
    else:
        log("session_ended", username)
        _store("session_ended", username)


def init_app(app: Quart) -> None:
    """Store security events in this app, and plug them into auth's registry: the
    overview's "Recent security activity" row, their pruner and their part of the export.

    The receivers above are connected when this module is imported, so the CLI (which
    sends the same signals without an app) logs too.
    """
    from ..auth.registry import registry
    from . import overview

    app.extensions[events.EXTENSION] = True
    app.teardown_appcontext(events.write_outside_requests)
    hooks = registry(app)
    hooks.overview_rows.append(overview.activity_row)
    hooks.pruners["security_events"] = events.prune
    hooks.exporters["security_activity"] = events.export
