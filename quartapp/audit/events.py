"""Each account's security activity: the events its owner sees on the account overview.

The audit's signal receivers (:mod:`quartapp.audit`) hand an event here with
:func:`record`. In a request, the request's events are written together once its
response is made (``after_this_request``), in one transaction, so the overview shown
next already has them; a signal's receiver itself runs synchronously and never touches
the database. The row is found by the username the signal names (``INSERT ... SELECT``
from ``users``): a name that is no account's (a failed login for an unknown name)
writes nothing. Events outside a request (the CLI's) are in the log only.

Not every audit line becomes an event: a refused attempt while locked out
(``locked_out``) is left out, since each such request would add a row and a flood would
fill the table; the failed attempts before the lockout are kept.

Rows older than :data:`RETENTION_DAYS` are pruned (auth's ``pruners``), and a deleted
account's go with it (``ON DELETE CASCADE``).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from quart import after_this_request, current_app, g, has_request_context, request
from quart.typing import ResponseTypes
from sqlalchemy import Float, String, delete, insert, literal, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from ..auth.models import User
from ..auth.registry import OverviewItem
from ..db import db
from ..web.display import browser_summary, iso_utc, utc_minute
from .models import BROWSER_COLUMN, SecurityEvent

log = logging.getLogger("quartapp.audit")

# Set in app.extensions by audit's init_app: this app stores events (a receiver is
# connected once per process and serves every app, tests' too).
EXTENSION = "quartapp.audit.events"
# What the request holds until its response is made.
PENDING = "quartapp_security_events"
RETENTION_DAYS = 90
# How many the overview shows.
RECENT = 10

# Each kind stored, as its owner reads it.
TEXTS = {
    "account_created": "Account created",
    "signed_in": "Signed in",
    "sign_in_failed": "Wrong password given",
    "signed_out": "Signed out",
    "session_ended": "Another session ended",
    "sessions_ended": "Logged out everywhere else",
    "password_changed": "Password changed",
    "password_change_failed": "Wrong current password given to change the password",
    "reauthenticated": "Confirmed it was you",
    "two_factor_enabled": "Two-factor turned on",
    "two_factor_disabled": "Two-factor turned off",
    "second_factor_failed": "Wrong two-factor code given",
    "recovery_code_used": "Recovery code used",
    "recovery_codes_renewed": "New recovery codes made",
    "passkey_added": "Passkey added",
    "passkey_removed": "Passkey removed",
    "passkey_renamed": "Passkey renamed",
    "passkey_failed": "Passkey refused",
    "passkey_clone_refused": "Passkey refused: it may have been copied",
    "device_code_created": "Code made to trust a new device",
    "device_trusted": "New device trusted",
}


@dataclass(frozen=True)
class Pending:
    """An event waiting for its request's response: whose, what, when and from where."""

    username: str
    kind: str
    at: float
    address: str | None
    browser: str


def record(kind: str, username: str | None) -> None:
    """Keep ``kind`` for the account named ``username``, if this is a request of an app
    that stores events; written once the response is made (:func:`_write`)."""
    if username is None or not has_request_context() or EXTENSION not in current_app.extensions:
        return
    pending: list[Pending] | None = g.get(PENDING)
    if pending is None:
        pending = []
        setattr(g, PENDING, pending)
        after_this_request(_write)
    pending.append(
        Pending(
            username=username,
            kind=kind,
            at=time.time(),
            address=request.remote_addr,
            browser=browser_summary(request.headers.get("User-Agent"))[:BROWSER_COLUMN],
        )
    )


async def _write(response: ResponseTypes) -> ResponseTypes:
    """Write the request's events in one transaction; a failure costs the events only."""
    pending: list[Pending] = g.pop(PENDING, [])
    try:
        async with db.session() as dbs:
            for event in pending:
                await dbs.execute(
                    insert(SecurityEvent).from_select(
                        ["user_id", "kind", "at", "address", "browser"],
                        select(
                            User.id,
                            literal(event.kind, String),
                            literal(event.at, Float),
                            literal(event.address, String),
                            literal(event.browser, String),
                        ).where(User.username == event.username),
                    )
                )
            await dbs.commit()
    except (SQLAlchemyError, OSError, TimeoutError) as error:
        # The page was made; the database went away since. The log line stands.
        log.warning("security events not stored: %s", type(error).__name__)
    return response


async def recent(dbs: AsyncSession, user_id: int, limit: int = RECENT) -> list[OverviewItem]:
    """The account's newest ``limit`` events, newest first."""
    rows = await dbs.scalars(
        select(SecurityEvent)
        .where(SecurityEvent.user_id == user_id)
        .order_by(SecurityEvent.at.desc(), SecurityEvent.id.desc())
        .limit(limit)
    )
    return [
        OverviewItem(
            text=TEXTS.get(row.kind, row.kind),
            at=utc_minute(row.at),
            address=row.address or "Unknown address",
            browser=row.browser or "Unknown browser",
        )
        for row in rows
    ]


async def export(dbs: AsyncSession, user_id: int) -> list[dict[str, Any]]:
    """The account's events for its data export, oldest first."""
    rows = await dbs.scalars(
        select(SecurityEvent)
        .where(SecurityEvent.user_id == user_id)
        .order_by(SecurityEvent.at, SecurityEvent.id)
    )
    return [
        {
            "at": iso_utc(row.at),
            "event": row.kind,
            "description": TEXTS.get(row.kind, row.kind),
            "address": row.address,
            "browser": row.browser,
        }
        for row in rows
    ]


async def prune(dbs: AsyncSession, _config: Any, batch: int) -> int:
    """Delete up to ``batch`` events older than RETENTION_DAYS (commits); how many."""
    cutoff = time.time() - RETENTION_DAYS * 86400
    stale = (
        select(SecurityEvent.id).where(SecurityEvent.at < cutoff).limit(batch).scalar_subquery()
    )
    result = await dbs.execute(delete(SecurityEvent).where(SecurityEvent.id.in_(stale)))
    await dbs.commit()
    return int(getattr(result, "rowcount", 0) or 0)
