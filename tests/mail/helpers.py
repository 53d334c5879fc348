"""What the mail tests share: the outbox read back as messages, addresses seeded."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from email import message_from_string
from email.message import EmailMessage
from email.policy import default
from typing import Any

from quart import Quart
from sqlalchemy import select

from quartapp.auth.models import User
from quartapp.db import db
from quartapp.mail.models import EmailAddress
from tests.conftest import aquery

from .conftest import BASE_URL

RESET_LINK = re.compile(re.escape(BASE_URL) + r"/reset_password/([A-Za-z0-9_-]+)")
CONFIRM_LINK = re.compile(re.escape(BASE_URL) + r"/account/email/confirm/([A-Za-z0-9_-]+)")
SENT_PAGE = "If an account uses that address, we sent it a link"


@dataclass
class Mail:
    """One outbox row, its message parsed with the standard library."""

    kind: str
    recipient: str
    message: EmailMessage

    @property
    def text(self) -> str:
        part = self.message.get_body(preferencelist=("plain",))
        assert part is not None
        return str(part.get_content())

    @property
    def html(self) -> str:
        part = self.message.get_body(preferencelist=("html",))
        assert part is not None
        return str(part.get_content())


async def outbox(settings: dict[str, Any], kind: str | None = None) -> list[Mail]:
    """The outbox's messages, oldest first (of ``kind``, or all)."""
    rows = await aquery(settings, "SELECT kind, recipient, message FROM mail_outbox ORDER BY id")
    return [
        Mail(k, r, message_from_string(m, policy=default))
        for k, r, m in rows
        if kind is None or k == kind
    ]


def link_in(mail: Mail, pattern: re.Pattern[str] = RESET_LINK) -> str:
    """The token of the link in a message's text, checked to be in its HTML too."""
    found = pattern.search(mail.text)
    assert found, mail.text
    assert found.group(0) in mail.html
    return found.group(1)


async def add_address(
    app: Quart, address: str, *, name: str = "alice", confirmed: bool = True
) -> None:
    """Give ``name`` an address straight in the database."""
    async with app.app_context(), db.session() as dbs:
        user_id = await dbs.scalar(select(User.id).where(User.username == name))
        now = time.time()
        dbs.add(
            EmailAddress(
                user_id=user_id,
                address=address,
                address_key=address.lower(),
                created_at=now,
                confirmed_at=now if confirmed else None,
            )
        )
        await dbs.commit()


async def tokens_of(settings: dict[str, Any]) -> list[tuple[Any, ...]]:
    """Every link row: purpose, address, used_at."""
    return await aquery(
        settings, "SELECT purpose, address, used_at FROM mail_tokens ORDER BY created_at"
    )
