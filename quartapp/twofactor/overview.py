"""Two-factor's row of the account overview (auth's ``overview_rows``)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from ..auth.registry import OverviewRow
from . import recovery, totp

ORDER = 20


async def row(dbs: AsyncSession, user_id: int) -> OverviewRow:
    """On or off, and with it on, how many recovery codes are left."""
    if not await totp.is_enabled(dbs, user_id):
        status = "Off"
    else:
        left = await recovery.remaining(dbs, user_id)
        codes = "1 recovery code" if left == 1 else f"{left} recovery codes"
        status = f"On, {codes} left"
    return OverviewRow(ORDER, "Two-factor authentication", status, "twofactor.settings")
