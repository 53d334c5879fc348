"""The email address's row of the account overview (auth's ``overview_rows``), with
mail on."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from ..auth.registry import OverviewRow
from . import addresses

ORDER = 40


async def row(dbs: AsyncSession, user_id: int) -> OverviewRow:
    """The account's address, and whether it is confirmed."""
    found = await addresses.of_user(dbs, user_id)
    if found is None:
        status = "None"
    elif found.confirmed_at is None:
        status = f"{found.address} (not confirmed yet)"
    else:
        status = found.address
    return OverviewRow(ORDER, "Email address", status, "mail.email", "Change")
