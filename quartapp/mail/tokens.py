"""Links sent by mail: 256 random bits, stored only as their SHA-256, spent once.

A link's token is ``secrets.token_urlsafe(32)``; ``mail_tokens.id`` is its SHA-256, so
a copy of the table opens nothing, and a lookup by it costs no comparison that could
leak through timing (the index finds the digest, not the token). A token is spent by
one statement, ``UPDATE ... WHERE used_at IS NULL AND expires_at > now RETURNING``:
of two requests that race with one link, on any number of processes, exactly one gets
the row back (on SQLite, which has had RETURNING since 3.35, and on PostgreSQL). A
newer link of the same purpose ends the older ones (:func:`issue`), and so do a new
password and a change of address (:func:`end`).
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from .models import MailToken

if TYPE_CHECKING:
    from .settings import MailSettings

RESET = "reset"
EMAIL = "email"
LIFETIMES = {RESET: 3600, EMAIL: 7200}
# A spent or expired token is kept this long, so a second click still gets "used" or
# "expired" rather than "unknown" (the same page either way), then pruned.
KEPT = 86400


class LinkRefused(Exception):
    """A link that is not live: unknown, spent, ended or expired (all look alike)."""


def link(settings: MailSettings, path: str, token: str) -> str:
    """The absolute link a message carries, ``BASE_URL`` + ``path`` + ``/<token>``: never
    built from a request's Host or ``X-Forwarded-Host``."""
    return f"{settings.base_url}{path}/{token}"


def digest(token: str) -> str:
    """The stored form of a token."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Spent:
    """Whose a spent token was, and the address it was sent to."""

    user_id: int
    address: str


async def issue(
    dbs: AsyncSession,
    *,
    user_id: int,
    purpose: str,
    address: str,
    lifetime: float | None = None,
) -> str:
    """A new link of ``purpose`` for the user, ending their older ones (no commit).

    ``lifetime``: seconds it lasts; ``LIFETIMES[purpose]`` unless a feature's own
    purpose (sign-up's) says.
    """
    await end(dbs, user_id, purpose)
    token = secrets.token_urlsafe(32)
    now = time.time()
    dbs.add(
        MailToken(
            id=digest(token),
            user_id=user_id,
            purpose=purpose,
            address=address,
            created_at=now,
            expires_at=now + (LIFETIMES[purpose] if lifetime is None else lifetime),
        )
    )
    await dbs.flush()
    return token


async def live(dbs: AsyncSession, token: str, purpose: str) -> Spent | None:
    """Whose a live (unspent, unexpired) token is, without spending it; None if not."""
    row = (
        await dbs.execute(
            select(MailToken.user_id, MailToken.address).where(
                MailToken.id == digest(token),
                MailToken.purpose == purpose,
                MailToken.used_at.is_(None),
                MailToken.expires_at > time.time(),
            )
        )
    ).first()
    return Spent(row[0], row[1]) if row is not None else None


async def spend(dbs: AsyncSession, token: str, purpose: str) -> Spent | None:
    """Spend a live token in one statement (no commit); None if it is not live.

    The caller's transaction decides: rolled back, the token is live again.
    """
    now = time.time()
    row = (
        await dbs.execute(
            update(MailToken)
            .where(
                MailToken.id == digest(token),
                MailToken.purpose == purpose,
                MailToken.used_at.is_(None),
                MailToken.expires_at > now,
            )
            .values(used_at=now)
            .returning(MailToken.user_id, MailToken.address)
        )
    ).first()
    return Spent(row[0], row[1]) if row is not None else None


async def end(dbs: AsyncSession, user_id: int, purpose: str | None = None) -> None:
    """End the user's unspent links (of ``purpose``, or all) (no commit)."""
    query = update(MailToken).where(MailToken.user_id == user_id, MailToken.used_at.is_(None))
    if purpose is not None:
        query = query.where(MailToken.purpose == purpose)
    # Marked used rather than deleted: a click on an ended link says so like a used one.
    await dbs.execute(query.values(used_at=time.time()))


async def prune(dbs: AsyncSession, _config: Mapping[str, Any], batch: int) -> int:
    """Delete up to ``batch`` tokens spent or expired over a day ago (commits); how many."""
    cutoff = time.time() - KEPT
    stale = (
        select(MailToken.id)
        .where(or_(MailToken.expires_at < cutoff, MailToken.used_at < cutoff))
        .limit(batch)
    )
    result = await dbs.execute(delete(MailToken).where(MailToken.id.in_(stale)))
    await dbs.commit()
    return int(getattr(result, "rowcount", 0) or 0)
