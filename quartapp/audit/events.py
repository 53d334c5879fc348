"""Each account's security activity: the events its owner sees on the account overview.

The audit's signal receivers (:mod:`quartapp.audit`) hand an event here with
:func:`record`; a receiver runs synchronously and never touches the database. In a
request, the request's events are written together once its response is made
(``after_this_request``), in one transaction, so the overview shown next already has
them. Outside a request (a ``users`` command, which runs in an app context with its
own engine), they are written when the app context ends, through an engine of their
own, with "Command line" for the browser and no address. The row is found by the
username the signal names (``INSERT ... SELECT`` from ``users``): a name that is no
account's (a failed login for an unknown name, a deleted account) writes nothing.

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

from quart import (
    after_this_request,
    current_app,
    g,
    has_app_context,
    has_request_context,
    request,
)
from quart.typing import ResponseTypes
from sqlalchemy import Float, String, delete, insert, literal, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from .. import settings
from ..auth.models import User
from ..auth.registry import OverviewItem
from ..db import connect, db
from ..web.display import browser_summary, iso_utc, utc_minute
from .models import BROWSER_COLUMN, SecurityEvent

log = logging.getLogger("quartapp.audit")

# Set in app.extensions by audit's init_app: this app stores events (a receiver is
# connected once per process and serves every app, tests' too).
EXTENSION = "quartapp.audit.events"
# What a request holds until its response is made; what an app context outside a
# request (the CLI) holds until it ends.
PENDING = "quartapp_security_events"
PENDING_OUTSIDE = "quartapp_security_events_outside"
# The browser of an event outside a request: an admin's `users` command.
COMMAND_LINE = "Command line"
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
    """Keep ``kind`` for the account named ``username``, in an app that stores events:
    written once the request's response is made, or once a command's app context ends."""
    if username is None or not has_app_context() or EXTENSION not in current_app.extensions:
        return
    in_request = has_request_context()
    key = PENDING if in_request else PENDING_OUTSIDE
    pending: list[Pending] | None = g.get(key)
    if pending is None:
        pending = []
        setattr(g, key, pending)
        if in_request:
            after_this_request(_write_request)
    if in_request:
        address = request.remote_addr
        browser = browser_summary(request.headers.get("User-Agent"))[:BROWSER_COLUMN]
    else:
        address, browser = None, COMMAND_LINE
    pending.append(Pending(username, kind, time.time(), address, browser))


async def _write_request(response: ResponseTypes) -> ResponseTypes:
    """Write the request's events with the app's engine."""
    pending: list[Pending] = g.pop(PENDING, [])
    try:
        async with db.session() as dbs:
            await _insert(dbs, pending)
    except (SQLAlchemyError, OSError, TimeoutError) as error:
        # The page was made; the database went away since. The log line stands.
        log.warning("security events not stored: %s", type(error).__name__)
    return response


async def write_outside_requests(_error: BaseException | None) -> None:
    """Write a command's events as its app context ends (``teardown_appcontext``).

    Through an engine of its own: a command opens its own (``cli.running``), and has
    closed it by now.
    """
    pending: list[Pending] = g.pop(PENDING_OUTSIDE, [])
    if not pending:
        return
    try:
        async with connect(settings.current()) as store, store.sessionmaker() as dbs:
            await _insert(dbs, pending)
    except (SQLAlchemyError, OSError, TimeoutError) as error:
        log.warning("security events not stored: %s", type(error).__name__)


async def _insert(dbs: AsyncSession, pending: list[Pending]) -> None:
    """Write ``pending`` in one transaction; a failure costs the events only."""
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
            # A command's event has no address to show.
            address=row.address or ("" if row.browser == COMMAND_LINE else "Unknown address"),
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
