"""The operations that change an account's second factor, shared by the web and the CLI.

``/account/two-factor/disable`` and ``users reset-2fa`` both turn TOTP off through
:func:`turn_off`; the admin's reset also ends every login (:func:`reset`).
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from .. import signals
from ..auth import logins
from . import totp


async def turn_off(dbs: AsyncSession, *, user_id: int, username: str, by: str) -> bool:
    """Remove the key, the recovery codes and half-done logins (commits); whether TOTP
    was in force. ``by``: "user" (the account page) or "admin" (the CLI)."""
    removed = await totp.remove(dbs, user_id)
    await dbs.commit()
    if removed:
        signals.send(signals.two_factor_disabled, username=username, by=by)
    return removed


async def reset(dbs: AsyncSession, *, user_id: int, username: str) -> tuple[bool, int]:
    """An admin's reset for a lost phone: TOTP off, and every login of the user ended
    (commits). Whether TOTP was in force, and how many logins ended."""
    removed = await totp.remove(dbs, user_id)
    ended = await logins.end_all(dbs, user_id)
    await dbs.commit()
    if removed:
        signals.send(signals.two_factor_disabled, username=username, by="admin")
    signals.send(signals.session_ended, username=username, count=ended, everywhere=True)
    return removed, ended
