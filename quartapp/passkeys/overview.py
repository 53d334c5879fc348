"""Passkeys' row of the account overview (auth's ``overview_rows``)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from ..auth.registry import OverviewRow
from . import store

ORDER = 30


async def row(dbs: AsyncSession, user_id: int) -> OverviewRow:
    """How many passkeys the account has."""
    found = await store.count(dbs, user_id)
    status = "None" if found == 0 else "1 passkey" if found == 1 else f"{found} passkeys"
    return OverviewRow(ORDER, "Passkeys", status, "passkeys.index")
