"""Signals for what happens to an account, as Flask-Security sends them.

Views, the credential check and the CLI send these where something happened; the
audit log (:mod:`.audit`) and the metrics (:mod:`.metrics`) subscribe. A receiver gets
the app as ``sender`` (None from the CLI, which runs without one) and the keyword
arguments listed with each signal. Receivers run in the request, synchronously, so
they must be quick and must not raise.

Second factors and passkeys add theirs here.
"""

from __future__ import annotations

from typing import Any

from blinker import Namespace, Signal
from quart import current_app, has_app_context

_signals = Namespace()

# username, remember, user_id, new_device (the browser had no trusted-device cookie of
# this user's): a login succeeded and its session started.
user_logged_in = _signals.signal("user-logged-in")
# username (as typed, normalized): a login's password was wrong or the user unknown.
login_failed = _signals.signal("login-failed")
# username, retry_after (seconds): an attempt was refused by the throttle, unchecked.
# Sent by every form that checks a password, the password change included.
locked_out = _signals.signal("locked-out")
# username: a login ended by its own logout.
user_logged_out = _signals.signal("user-logged-out")
# username, count, everywhere: logins ended from elsewhere: one from the sessions page
# (everywhere False), or all but this one / all of them (everywhere True).
session_ended = _signals.signal("session-ended")
# username, sessions_ended: the password changed, and so many other logins ended.
password_changed = _signals.signal("password-changed")
# username: the current password given to change it was wrong.
password_change_failed = _signals.signal("password-change-failed")
# username: an account was created (by an admin with `users create`, or at /register).
user_created = _signals.signal("user-created")
# pseudonym (a keyed hash of the name, never the name), by ("user" or "admin"),
# sessions_ended: an account was deleted (/account/delete, `users delete`).
user_deleted = _signals.signal("user-deleted")
# username, counters_cleared: an admin lifted a lockout (`users unlock`).
unlocked = _signals.signal("unlocked")
# username: a logged-in user made a one-time code to trust a new browser.
device_code_created = _signals.signal("device-code-created")
# username: a browser became a trusted device with such a code.
device_trusted = _signals.signal("device-trusted")
# retry_after: a network typed too many wrong device codes and is refused for a while.
device_code_locked_out = _signals.signal("device-code-locked-out")
# username, method ("password", "password+code", "passkey"): a logged-in user proved who they are
# again (auth.reauth), before a sensitive change.
reauthenticated = _signals.signal("reauthenticated")


# Second factors (quartapp.twofactor). username: TOTP was turned on (its first code was
# right and ten recovery codes were made).
two_factor_enabled = _signals.signal("two-factor-enabled")
# username, by ("user" from the account page, "admin" from `users reset-2fa`): TOTP and
# the recovery codes were removed.
two_factor_disabled = _signals.signal("two-factor-disabled")
# username, method ("totp" or "recovery-code"), step ("login" or "confirm"): a
# second-factor code was right, at a login's second step or at /login/confirm.
second_factor_succeeded = _signals.signal("second-factor-succeeded")
# username, method (what the code was taken for: "totp" for six digits, else
# "recovery-code"), step: a second-factor code was wrong or used, at a login's second
# step or at /login/confirm (a code refused unchecked after too many misses is not sent).
second_factor_failed = _signals.signal("second-factor-failed")
# username, remaining: a recovery code was spent (at login or to confirm a change).
recovery_code_used = _signals.signal("recovery-code-used")
# username: new recovery codes replaced the old ones.
recovery_codes_renewed = _signals.signal("recovery-codes-renewed")


# Passkeys (quartapp.passkeys). username, name (the passkey's): one was added or removed.
passkey_added = _signals.signal("passkey-added")
passkey_removed = _signals.signal("passkey-removed")
# username, old, new: a passkey was renamed.
passkey_renamed = _signals.signal("passkey-renamed")
# username, name: a sign-in with a passkey succeeded (user_logged_in is sent too).
passkey_signed_in = _signals.signal("passkey-signed-in")
# username, reason: a new passkey was refused (its challenge expired, the
# authenticator's answer did not verify, it is registered already, or one too many).
passkey_registration_failed = _signals.signal("passkey-registration-failed")
# username (None when the passkey is unknown), reason: a passkey sign-in, or a
# confirmation with one, was refused.
passkey_failed = _signals.signal("passkey-failed")
# username, name, stored, received: a passkey's signature count did not go up, so the
# credential may have been copied; the sign-in was refused.
passkey_clone_refused = _signals.signal("passkey-clone-refused")


# Mail (quartapp.mail.sender), sent outside any request. kind (the message's, like
# "reset"), attempts: a message was delivered (mail_sent), or given up (mail_failed,
# with error: the last failure's class and SMTP code, never the address or the body).
mail_sent = _signals.signal("mail-sent")
mail_failed = _signals.signal("mail-failed")
# depth: how many messages the outbox holds unsent (and not given up), as a sender
# last counted them (all processes share the one table).
mail_outbox_depth = _signals.signal("mail-outbox-depth")


# The service itself (quartapp.web.errors). endpoint: a request got the 503 page because
# a queue of work (password hashing, ratings) was full.
queue_full = _signals.signal("queue-full")
# No fields: a request got the 503 page because the database failed or timed out.
database_failed = _signals.signal("database-failed")
# depth: how many places in this process's hashing line are taken now (auth.passwords).
hashing_queue_changed = _signals.signal("hashing-queue-changed")


def send(signal: Signal, **fields: Any) -> None:
    """Send ``signal`` from the current app (None outside one, as in the CLI)."""
    # The app itself, not the context-local proxy, as Flask's own signals do.
    sender = current_app._get_current_object() if has_app_context() else None  # type: ignore[attr-defined]  # LocalProxy's method, hidden by its Quart type
    signal.send(sender, **fields)
