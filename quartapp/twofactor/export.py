"""Two-factor's part of a person's data export (auth's registry: ``exporters``).

Whether TOTP is on and since when, how many recovery codes are left, and the wrong
codes recorded for the owner to see; never the key or the codes.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ..web.display import browser_summary, iso_utc
from . import recovery, totp
from .models import SecondFactorFailure


async def export(dbs: AsyncSession, user_id: int) -> dict[str, Any]:
    """What two-factor stores about the user, as JSON-ready values."""
    factor = await totp.find(dbs, user_id)
    on = factor is not None and factor.confirmed_at is not None
    failures = (
        await dbs.scalars(
            select(SecondFactorFailure)
            .where(SecondFactorFailure.user_id == user_id)
            .order_by(SecondFactorFailure.at)
        )
    ).all()
    return {
        "totp_on": on,
        "totp_on_since": iso_utc(factor.confirmed_at) if on and factor is not None else None,
        "recovery_codes_left": await recovery.remaining(dbs, user_id),
        "wrong_codes": [
            {
                "at": iso_utc(failure.at),
                "step": failure.step,
                "address": failure.address,
                "browser": browser_summary(failure.user_agent),
                "user_agent": failure.user_agent,
            }
            for failure in failures
        ],
    }
