"""The account overview's rows that are the account's own (auth's ``overview_rows``):
the password, the sessions and the trusted devices."""

from __future__ import annotations

import time
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from ..auth import devices
from ..auth import settings as auth_settings
from ..auth.models import Login, User
from ..auth.registry import OverviewRow
from ..web.display import utc_minute
from . import login_list

PASSWORD, SESSIONS, DEVICES = 10, 50, 60


def plural(count: int, one: str, many: str | None = None) -> str:
    """``count`` and the noun, as "1 passkey" or "3 passkeys"."""
    return f"{count} {one if count == 1 else (many or one + 's')}"


def utc_text(moment: datetime | float) -> str:
    """A stored time as the sessions page shows it: "7 Dec 2026, 12:05 UTC"."""
    shown = utc_minute(moment)
    return f"{shown.strftime('%-d %b %Y, %H:%M')} UTC"


async def password_row(dbs: AsyncSession, user_id: int) -> OverviewRow | None:
    """When the password was last changed (or set, with the account)."""
    found = (
        await dbs.execute(
            select(User.password_changed_at, User.created_at).where(User.id == user_id)
        )
    ).first()
    if found is None:
        return None
    changed, created = found
    status = (
        f"Last changed {utc_text(changed)}"
        if changed is not None
        else f"Set when the account was made, {utc_text(created)}"
    )
    return OverviewRow(PASSWORD, "Password", status, "account.password", "Change")


async def sessions_row(dbs: AsyncSession, user_id: int) -> OverviewRow:
    """How many logins of the account are live, this one included."""
    config = auth_settings.current()
    live = await dbs.scalar(
        select(func.count())
        .select_from(Login)
        .where(Login.user_id == user_id, login_list.live(config, time.time()))
    )
    status = f"Signed in on {plural(int(live or 0), 'device')}"
    return OverviewRow(SESSIONS, "Your sessions", status, "account.sessions")


async def devices_row(dbs: AsyncSession, user_id: int) -> OverviewRow:
    """How many browsers are trusted devices of the account."""
    trusted = await devices.count(dbs, auth_settings.current(), user_id)
    return OverviewRow(
        DEVICES,
        "Trusted devices",
        plural(trusted, "trusted browser") if trusted else "None",
        "account.sessions",
    )
