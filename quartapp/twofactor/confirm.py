"""The code ``/login/confirm`` asks for when TOTP is on (registered with auth's registry).

With TOTP in force the password alone confirms nothing: :func:`confirm_code` spends a
TOTP or recovery code through the same path as the sign-in's second step
(:func:`.login.use_code`), counted against the user's run of misses.
"""

from __future__ import annotations

from .. import signals
from ..auth.current import signed_in
from ..auth.forms import ConfirmForm
from ..db import db
from . import misses, recovery, totp
from .login import CODE_NEEDED, RECOVERY_CODE, flash_remaining, required, use_code


async def asks_code(user_id: int) -> bool:
    """Whether /login/confirm must ask this user for a code."""
    return await required(user_id)


async def confirm_code(form: ConfirmForm, user_id: int) -> str | None:
    """The confirm form's code, for a user with TOTP: None when right, else the error.

    Runs after the password was checked (and counted) by the throttle; a wrong code
    leaves that attempt counted, and counts against the user's run of misses.
    """
    username = signed_in().username
    async with db.session() as dbs:
        if not await totp.is_enabled(dbs, user_id):
            return None
        text = form.code.data or ""
        if not text.strip():
            return CODE_NEEDED
        outcome = await use_code(dbs, user_id, text, step=misses.CONFIRM)
        left = await recovery.remaining(dbs, user_id) if outcome.method else 0
        await dbs.commit()
    if outcome.method is None:
        if outcome.refusal is None:
            signals.send(
                signals.second_factor_failed,
                username=username,
                method=outcome.tried,
                step="confirm",
            )
        return outcome.error
    signals.send(
        signals.second_factor_succeeded, username=username, method=outcome.method, step="confirm"
    )
    if outcome.method == RECOVERY_CODE:
        signals.send(signals.recovery_code_used, username=username, remaining=left)
        await flash_remaining(left, "confirmed")
    return None
