"""The tables of :mod:`quartapp.mail`: each account's address, the outbox, and the links.

On ``db.Base``; migration 0009 creates them. Times are Unix seconds, as on ``logins``.
None of them is read on every page view: a sign-in reads ``email_addresses`` only to
tell a person of a new device, the account's overview and email pages to show the
address, and the sender reads the outbox outside any request.
"""

from __future__ import annotations

from sqlalchemy import Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ..db import Base

__all__ = ["ADDRESS_COLUMN", "EmailAddress", "MailToken", "OutboxMessage"]

# RFC 5321's limit on a forward path: 256 octets with its angle brackets.
ADDRESS_COLUMN = 254


class EmailAddress(Base):
    """A user's address: at most one, optional, unique whatever its case.

    ``address`` is email-validator's normal form (the domain in lower case and IDNA,
    the local part as typed); ``address_key`` is its lower case, which the unique
    index holds, so ``Ann@Example.com`` and ``ann@example.com`` are one address.
    ``confirmed_at`` is NULL until the owner followed a link sent to it or an admin
    set it: mail about the account goes only to a confirmed address.
    """

    __tablename__ = "email_addresses"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    address: Mapped[str] = mapped_column(String(ADDRESS_COLUMN))
    address_key: Mapped[str] = mapped_column(String(ADDRESS_COLUMN), unique=True)
    created_at: Mapped[float] = mapped_column(Float)
    confirmed_at: Mapped[float | None] = mapped_column(Float)


class MailToken(Base):
    """A link sent by mail: a password reset, or the confirmation of a new address.

    The link carries 256 bits from ``secrets``; only their SHA-256 is stored (``id``),
    so a copy of the table opens nothing. A token works once and until
    ``expires_at``: it is spent by one conditional UPDATE (``used_at IS NULL AND
    expires_at > now``), whichever process sees it. ``address`` is the new address
    a ``purpose="email"`` link confirms, and the address a reset link was sent to.
    """

    __tablename__ = "mail_tokens"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    purpose: Mapped[str] = mapped_column(String(16))
    address: Mapped[str] = mapped_column(String(ADDRESS_COLUMN))
    created_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float] = mapped_column(Float, index=True)
    used_at: Mapped[float | None] = mapped_column(Float)


class OutboxMessage(Base):
    """One message to send, written in the transaction of the change it reports.

    ``message`` is the whole RFC 5322 message, rendered when it was written (its
    ``Message-ID`` fixed then, so a repeat after a crash is the same message); it is
    erased once sent or given up, so links in it do not outlive their use. A sender
    claims a row by setting ``claimed_until`` (a lease) and counting ``attempts``;
    a sender that dies leaves the lease to run out, and the row is sent again: at
    most one repeat, never a loss. ``user_id`` has no foreign key: a message about
    an account that is then deleted is still sent.
    """

    __tablename__ = "mail_outbox"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    user_id: Mapped[int | None] = mapped_column(Integer)
    recipient: Mapped[str] = mapped_column(String(ADDRESS_COLUMN))
    message: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[float] = mapped_column(Float)
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    next_attempt_at: Mapped[float] = mapped_column(Float)
    claimed_until: Mapped[float | None] = mapped_column(Float)
    sent_at: Mapped[float | None] = mapped_column(Float)
    failed_at: Mapped[float | None] = mapped_column(Float)
    # The last failure's class and SMTP reply, never the message or its recipient.
    last_error: Mapped[str | None] = mapped_column(String(255))

    # What a sender looks for: unsent, not given up, due.
    __table_args__ = (Index("ix_mail_outbox_due", "sent_at", "failed_at", "next_attempt_at"),)
