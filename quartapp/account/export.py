"""What a person's data export holds: their account, logins and devices, then each
feature's part (auth's registry: ``exporters``), as JSON-ready values.

Only what the database holds. Secrets and what stands for them are left out: password
hashes, login and device tokens' digests, TOTP keys, recovery codes, passkeys' keys.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ..auth.models import Device, Login, User
from ..auth.registry import registry
from ..web.display import browser_summary
from ..web.display import iso_utc as iso

# The download's version of its own shape, for whoever reads it with a program.
FORMAT = 1


async def collect(dbs: AsyncSession, user_id: int) -> dict[str, Any]:
    """Everything stored about the user, by part; raises LookupError if they are gone."""
    user = await dbs.get(User, user_id)
    if user is None:
        raise LookupError(user_id)
    found: dict[str, Any] = {
        "format": FORMAT,
        "exported_at": iso(datetime.now(UTC)),
        "account": {"username": user.username, "created_at": iso(user.created_at)},
    }
    logins = (
        await dbs.scalars(select(Login).where(Login.user_id == user_id).order_by(Login.created_at))
    ).all()
    found["logins"] = [
        {
            "started_at": iso(login.created_at),
            "last_seen_at": iso(login.last_seen),
            "expires_at": iso(login.expires_at),
            "last_confirmed_at": iso(login.verified_at),
            "method": login.method,
            "remembered": login.remember,
            "address": login.address,
            "browser": browser_summary(login.user_agent),
            "user_agent": login.user_agent,
        }
        for login in logins
    ]
    devices = (
        await dbs.scalars(
            select(Device).where(Device.user_id == user_id).order_by(Device.created_at)
        )
    ).all()
    found["trusted_devices"] = [
        {"trusted_at": iso(device.created_at), "last_used_at": iso(device.last_used)}
        for device in devices
    ]
    for key, exporter in sorted(registry().exporters.items()):
        found[key] = await exporter(dbs, user_id)
    return found
