"""The transactional outbox: a message is a row written with the change it reports.

:func:`enqueue` adds the row to the caller's session and does not commit: the message
exists exactly when the change does. Nothing is sent inside a request; the sender
(:mod:`.sender`) delivers rows after commit. When this process runs a sender, the
commit wakes it at once (a SQLAlchemy ``after_commit`` hook on the caller's session);
otherwise (the CLI, a web process whose outbox a worker sends) the sender finds the row
at its next look, a few seconds later.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from quart import current_app, has_app_context
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from . import message
from .models import OutboxMessage
from .settings import MailSettings

# app.extensions key of the asyncio.Event that wakes this process's sender.
WAKE = "quartapp.mail.wake"


async def enqueue(
    dbs: AsyncSession,
    settings: MailSettings,
    *,
    kind: str,
    to: str,
    subject: str,
    template: str,
    user_id: int | None = None,
    **context: Any,
) -> None:
    """Write one message to the outbox in ``dbs``'s transaction (no commit)."""
    built = await message.build(settings, to=to, subject=subject, template=template, **context)
    now = time.time()
    dbs.add(
        OutboxMessage(
            kind=kind,
            user_id=user_id,
            recipient=to,
            message=built.as_string(),
            created_at=now,
            attempts=0,
            next_attempt_at=now,
        )
    )
    wake_after_commit(dbs)


def wake_after_commit(dbs: AsyncSession) -> None:
    """Wake this process's sender when ``dbs``'s transaction commits (not on rollback)."""
    wake: asyncio.Event | None = current_app.extensions.get(WAKE) if has_app_context() else None
    session = dbs.sync_session
    if wake is None or session.info.get(WAKE):
        return  # no sender here, or this transaction will wake it already
    session.info[WAKE] = True

    def committed(committed_session: Session) -> None:
        committed_session.info.pop(WAKE, None)
        # Called on the event loop's thread (SQLAlchemy's asyncio runs sync code in a
        # greenlet there), so setting the event needs no thread hand-off.
        wake.set()

    event.listen(session, "after_commit", committed, once=True)
