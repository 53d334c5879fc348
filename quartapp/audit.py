"""The audit log: one structured line per authentication event.

Lines go to the ``quartapp.audit`` logger as JSON, with the event, the username and
the client address, and never a password. A typed username that could not be one (a
password typed into the wrong box, say) is recorded only as a keyed hash.

The log subscribes to the account signals (:mod:`.signals`); events that have no
signal (a user created or deleted, a failed password change) call :func:`log`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
from typing import TYPE_CHECKING

from quart import current_app, has_app_context, has_request_context, request

from . import signals
from .auth.users import USERNAME_PATTERN
from .settings import DEFAULTS

if TYPE_CHECKING:
    from quart import Quart

logger = logging.getLogger("quartapp.audit")

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
    config = current_app.config if has_app_context() else DEFAULTS
    if len(normalized) <= config["USERNAME_MAX_LENGTH"] and USERNAME_PATTERN.fullmatch(normalized):
        return normalized
    key = config.get("SECRET_KEY") or _PROCESS_KEY
    if isinstance(key, str):
        key = key.encode()
    digest = hmac.new(
        key, _HASH_CONTEXT + username.encode("utf-8", "surrogatepass"), hashlib.sha256
    ).hexdigest()
    return f"sha256:{digest[:12]}"


# The signals, as the lines they have always been. Connected at import: quartapp's
# package imports this module, so the app and the CLI both log.


@signals.user_logged_in.connect
def _logged_in(_sender: object, *, username: str, remember: bool) -> None:
    log("login_ok", username, remember=remember)


@signals.login_failed.connect
def _login_failed(_sender: object, *, username: str) -> None:
    log("login_failed", username)


@signals.locked_out.connect
def _locked_out(_sender: object, *, username: str, retry_after: int) -> None:
    log("lockout", username, retry_after=retry_after)


@signals.user_logged_out.connect
def _logged_out(_sender: object, *, username: str) -> None:
    log("logout", username)


@signals.session_ended.connect
def _session_ended(_sender: object, *, username: str, count: int, everywhere: bool) -> None:
    if everywhere:
        log("sessions_revoked", username, sessions_ended=count)
    else:
        log("session_ended", username)


@signals.password_changed.connect
def _password_changed(_sender: object, *, username: str, sessions_ended: int) -> None:
    log("password_changed", username, sessions_ended=sessions_ended)


@signals.reauthenticated.connect
def _reauthenticated(_sender: object, *, username: str, method: str) -> None:
    log("reauthenticated", username, method=method)


@signals.two_factor_enabled.connect
def _two_factor_enabled(_sender: object, *, username: str) -> None:
    log("two_factor_enabled", username)


@signals.two_factor_disabled.connect
def _two_factor_disabled(_sender: object, *, username: str, by: str) -> None:
    log("two_factor_disabled", username, by=by)


@signals.second_factor_succeeded.connect
def _second_factor_ok(_sender: object, *, username: str, method: str) -> None:
    log("two_factor_ok", username, method=method)


@signals.second_factor_failed.connect
def _second_factor_failed(_sender: object, *, username: str) -> None:
    log("two_factor_failed", username)


@signals.recovery_code_used.connect
def _recovery_code_used(_sender: object, *, username: str, remaining: int) -> None:
    log("recovery_code_used", username, remaining=remaining)


@signals.recovery_codes_renewed.connect
def _recovery_codes_renewed(_sender: object, *, username: str) -> None:
    log("recovery_codes_created", username)


@signals.passkey_added.connect
def _passkey_added(_sender: object, *, username: str, name: str) -> None:
    log("passkey_added", username, passkey=name)


@signals.passkey_removed.connect
def _passkey_removed(_sender: object, *, username: str, name: str) -> None:
    log("passkey_removed", username, passkey=name)


@signals.passkey_renamed.connect
def _passkey_renamed(_sender: object, *, username: str, old: str, new: str) -> None:
    log("passkey_renamed", username, passkey=new, old_name=old)


@signals.passkey_signed_in.connect
def _passkey_signed_in(_sender: object, *, username: str, name: str) -> None:
    log("passkey_login_ok", username, passkey=name)


@signals.passkey_failed.connect
def _passkey_failed(_sender: object, *, username: str | None, reason: str) -> None:
    log("passkey_login_failed", username, reason=reason)


@signals.passkey_clone_refused.connect
def _passkey_clone_refused(
    _sender: object, *, username: str, name: str, stored: int, received: int
) -> None:
    log("passkey_clone_refused", username, passkey=name, stored=stored, received=received)


def init_app(app: Quart) -> None:
    """Nothing to register per app: the receivers above are connected when this module
    is imported, so the CLI (which sends the same signals without an app) logs too.
    ``create_app`` imports it through ``FEATURES``."""
