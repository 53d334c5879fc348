"""The sessions page's view of a user's logins: the live ones, their ids, ending one.

The records themselves, their limits and their lookups are in
:mod:`quartapp.auth.logins`; this is what the account pages need to list them and end
another device's login.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Sequence

from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from ..auth import logins
from ..auth.logins import idle_limit
from ..auth.models import Login
from ..auth.settings import AuthSettings

# Domain separation for the ids the sessions page shows (see public_id): the
# SECRET_KEY also signs the session cookies.
_PUBLIC_ID_CONTEXT = b"quartapp.logins.public-id\0"


def live(config: AuthSettings, now: float) -> ColumnElement[bool]:
    """The rows :func:`find_record` would accept at ``now``: within both limits."""
    return and_(
        Login.expires_at > now,
        or_(
            and_(
                Login.remember.is_(False),
                Login.last_seen >= now - idle_limit(config, remember=False),
            ),
            and_(
                Login.remember.is_(True),
                Login.last_seen >= now - idle_limit(config, remember=True),
            ),
        ),
    )


async def live_for_user(
    session: AsyncSession, config: AuthSettings, user_id: int
) -> Sequence[Login]:
    """A user's live logins, newest first: what the sessions page lists."""
    query = (
        select(Login)
        .where(Login.user_id == user_id, live(config, time.time()))
        .order_by(Login.created_at.desc(), Login.id)
    )
    return (await session.execute(query)).scalars().all()


def public_id(config: AuthSettings, login_id: str) -> str:
    """The id a page may show for a login: an HMAC of the row's id, not the id itself.

    The row's id is the SHA-256 of a live cookie's token; it is no token, but it stays
    out of pages and forms all the same. Keyed, so that no one can make the id of a
    login they have not been shown.
    """
    mac = hmac.new(
        config.site.secret_key.encode(), _PUBLIC_ID_CONTEXT + login_id.encode(), hashlib.sha256
    )
    return mac.hexdigest()[:32]


async def end_other(
    session: AsyncSession,
    config: AuthSettings,
    user_id: int,
    public: str,
    *,
    keep: str,
) -> bool:
    """End the user's live login shown as ``public``, unless it is ``keep`` (commits).

    Only this user's logins are searched, so an id from someone else's page ends
    nothing. Returns whether a login was ended.
    """
    for login in await live_for_user(session, config, user_id):
        if login.id != keep and hmac.compare_digest(public_id(config, login.id), public):
            ended = await logins.end_one(session, user_id, login.id)
            await session.commit()
            return ended
    return False
