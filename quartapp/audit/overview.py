"""The account overview's "Recent security activity" row (auth's ``overview_rows``)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from ..auth.registry import OverviewRow
from . import events

ORDER = 70  # last: the overview's other rows are what one can change


async def activity_row(dbs: AsyncSession, user_id: int) -> OverviewRow:
    """The account's last events, newest first, and how long they are kept."""
    items = await events.recent(dbs, user_id)
    return OverviewRow(
        order=ORDER,
        title="Recent security activity",
        status=(
            f"Newest first, up to {events.RECENT}. Events are kept for "
            f"{events.RETENTION_DAYS} days."
            if items
            else "Nothing recorded yet."
        ),
        items=items,
    )
