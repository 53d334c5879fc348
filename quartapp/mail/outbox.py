"""The transactional outbox: a message is a row written with the change it reports.

:func:`enqueue` adds the row to the caller's session and does not commit: the message
exists exactly when the change does. Nothing is sent inside a request; the sender
(:mod:`.sender`) delivers rows after commit.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from . import message
from .models import OutboxMessage
from .settings import MailSettings


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
