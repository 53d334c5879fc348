"""The passkeys in the database: challenges handed out and claimed, credentials kept.

A signed-in user's challenges (to register a passkey, to confirm a login) are rows,
CHALLENGES_PER_USER of each purpose at most. A sign-in's challenge is not: anyone may
ask for one, so it is kept in the asker's session cookie, and only its use is
recorded here (:func:`spend_signin_challenge`), once a signature verified.

A challenge is claimed with one ``DELETE ... RETURNING``: of two requests answering
the same challenge (a replay, two workers) exactly one gets the row, on SQLite and
PostgreSQL alike, and an expired one is used up all the same. A signature count is
moved on with an ``UPDATE`` that names the count it was checked against, so two
assertions racing with one count cannot both pass.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from ..auth.models import User
from ..web.display import iso_utc
from .ceremony import CHALLENGE_LIFETIME, challenge_key
from .models import Passkey, PasskeyChallenge

PURPOSES = frozenset({"register", "login", "confirm"})
CHALLENGE_BYTES = 32
USER_HANDLE_BYTES = 32
PRUNE_BATCH = 500
# Live challenges a user may hold for one purpose (registering, confirming): one per
# open page is all a person needs; a few, for a few tabs. Asking for more ends the
# oldest, so a signed-in client asking in a loop holds this many rows, not thousands.
CHALLENGES_PER_USER = 5
# Seconds a used sign-in challenge is remembered past its end (spend_signin_challenge).
CLOCK_SKEW = 60


async def _lock_user(session: AsyncSession, user_id: int) -> None:
    """Hold the user's row until commit, so that two requests counting the user's rows
    at once take turns.

    Without it each would keep the newest few it sees, or count only its own new row,
    and together they would leave more. FOR NO KEY UPDATE, as logins.make_room takes:
    no conflict with the KEY SHARE a new row's foreign key takes. On SQLite the
    caller's INSERT, before it counts, takes the one writer's lock, so the count sees
    every committed row.
    """
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(
            select(User.id).where(User.id == user_id).with_for_update(key_share=True)
        )


async def new_challenge(
    session: AsyncSession, purpose: str, user_id: int, handle: bytes | None = None
) -> bytes:
    """Make a challenge for one of a user's ceremonies and keep it (commits).

    ``handle``: a registration's user handle, kept until the answer comes back. The
    user keeps their CHALLENGES_PER_USER newest challenges of this purpose: the oldest
    goes in the same transaction as the newest comes, so asking for options again and
    again, even all at once, holds that many rows at most.
    """
    if purpose not in PURPOSES - {"login"}:
        raise ValueError(f"not a purpose of a signed-in user: {purpose!r}")
    await _lock_user(session, user_id)
    challenge = secrets.token_bytes(CHALLENGE_BYTES)
    key = challenge_key(challenge)
    session.add(
        PasskeyChallenge(
            id=key,
            purpose=purpose,
            user_id=user_id,
            expires_at=time.time() + CHALLENGE_LIFETIME,
            user_handle=handle,
        )
    )
    await session.flush()
    # The new row is never the one to go, whatever the clock says.
    older = (
        select(PasskeyChallenge.id)
        .where(
            PasskeyChallenge.user_id == user_id,
            PasskeyChallenge.purpose == purpose,
            PasskeyChallenge.id != key,
        )
        .order_by(PasskeyChallenge.expires_at.desc(), PasskeyChallenge.id.desc())
        .offset(CHALLENGES_PER_USER - 1)
    )
    await session.execute(
        delete(PasskeyChallenge).where(PasskeyChallenge.id.in_(older.scalar_subquery()))
    )
    await session.commit()
    return challenge


async def spend_signin_challenge(
    session: AsyncSession, challenge: bytes, user_id: int, expires_at: float
) -> bool:
    """Record a sign-in challenge as used, once its answer verified (commits).

    A sign-in's challenge lives in the browser's signed session until then (see
    :mod:`.signin`), so no one writes a row here without a registered passkey's
    signature. Once the challenge has expired no answer to it is accepted anyway, so
    the row goes then (pruned). False when the row exists already: the same
    answer sent again, with an old copy of the session cookie (a replay).
    """
    session.add(
        PasskeyChallenge(
            id=challenge_key(challenge),
            purpose="login",
            user_id=user_id,
            # Kept a little past the challenge's end: another worker whose clock is
            # behind this one's still finds it, should the answer be sent there again.
            expires_at=expires_at + CLOCK_SKEW,
        )
    )
    try:
        await session.commit()
    except IntegrityError:
        await session.rollback()
        return False
    return True


@dataclass(frozen=True)
class Claimed:
    """A live challenge, used up; the user handle it was made with, for a registration."""

    handle: bytes | None


async def claim_challenge(
    session: AsyncSession, challenge: bytes, purpose: str, user_id: int
) -> Claimed | None:
    """Use up a challenge (commits); None unless it was live, for this purpose and user.

    A challenge is gone after its first answer, right or wrong, so none is tried twice.
    """
    # Only a row of this purpose and user goes: a used sign-in challenge's row must
    # stay until it expires, or its answer could be sent again.
    row = (
        await session.execute(
            delete(PasskeyChallenge)
            .where(
                PasskeyChallenge.id == challenge_key(challenge),
                PasskeyChallenge.purpose == purpose,
                PasskeyChallenge.user_id == user_id,
            )
            .returning(PasskeyChallenge.expires_at, PasskeyChallenge.user_handle)
        )
    ).first()
    await session.commit()
    if row is None or row.expires_at <= time.time():
        return None
    return Claimed(None if row.user_handle is None else bytes(row.user_handle))


async def for_user(session: AsyncSession, user_id: int) -> Sequence[Passkey]:
    """A user's passkeys, oldest first."""
    rows = await session.scalars(
        select(Passkey).where(Passkey.user_id == user_id).order_by(Passkey.id)
    )
    return rows.all()


async def export(session: AsyncSession, user_id: int) -> list[dict[str, str | None]]:
    """The user's passkeys for their data export (auth's ``exporters``): names and
    dates, never the credential or its key."""
    return [
        {
            "name": passkey.name,
            "added_at": iso_utc(passkey.created_at),
            "last_used_at": iso_utc(passkey.last_used),
        }
        for passkey in await for_user(session, user_id)
    ]


async def count(session: AsyncSession, user_id: int) -> int:
    """How many passkeys a user has."""
    found = await session.scalar(
        select(func.count()).select_from(Passkey).where(Passkey.user_id == user_id)
    )
    return int(found or 0)


async def user_handle(session: AsyncSession, user_id: int) -> bytes:
    """The WebAuthn user handle of a user: their passkeys' one, or a new random one.

    Random rather than derived from the user's id, as WebAuthn asks: it identifies
    the account to authenticators, so it must say nothing about it.
    """
    found = await session.scalar(
        select(Passkey.user_handle).where(Passkey.user_id == user_id).limit(1)
    )
    return bytes(found) if found is not None else secrets.token_bytes(USER_HANDLE_BYTES)


async def add(
    session: AsyncSession,
    *,
    user_id: int,
    credential_id: str,
    public_key: bytes,
    sign_count: int,
    handle: bytes,
    name: str,
    most: int,
) -> Passkey | None:
    """Store a new passkey (commits); None when the user has ``most`` already.

    The credential id is unique: a second registration of one credential fails the
    insert, and the caller refuses it. Counted after the insert, in its transaction
    (with the user's row locked on PostgreSQL, as :func:`new_challenge` does), so
    registrations at once cannot together pass ``most``.
    """
    await _lock_user(session, user_id)
    passkey = Passkey(
        user_id=user_id,
        credential_id=credential_id,
        public_key=public_key,
        sign_count=sign_count,
        user_handle=handle,
        name=name,
        created_at=time.time(),
        last_used=None,
    )
    session.add(passkey)
    await session.flush()
    if await count(session, user_id) > most:
        await session.rollback()
        return None
    await session.commit()
    return passkey


async def credential_taken(session: AsyncSession, credential_id: str) -> bool:
    """Whether a credential id is registered already (to anyone)."""
    found = await session.scalar(select(Passkey.id).where(Passkey.credential_id == credential_id))
    return found is not None


@dataclass(frozen=True)
class Found:
    """A passkey found by its credential id, and whose it is."""

    passkey: Passkey
    username: str


async def find(session: AsyncSession, credential_id: str) -> Found | None:
    """The passkey with this credential id, and its user's name; None if unknown."""
    row = (
        await session.execute(
            select(Passkey, User.username)
            .join(User, User.id == Passkey.user_id)
            .where(Passkey.credential_id == credential_id)
        )
    ).first()
    return None if row is None else Found(row[0], row[1])


async def record_use(session: AsyncSession, passkey_id: int, stored: int, received: int) -> bool:
    """Move the signature count on from ``stored`` to ``received`` (commits).

    False when another sign-in moved it first: the two assertions carried counts
    checked against the same stored one, so one of them is a copy or a replay.
    """
    result = await session.execute(
        update(Passkey)
        .where(Passkey.id == passkey_id, Passkey.sign_count == stored)
        .values(sign_count=received, last_used=time.time())
    )
    await session.commit()
    return int(getattr(result, "rowcount", 0) or 0) == 1


async def owned(session: AsyncSession, user_id: int, passkey_id: int) -> Passkey | None:
    """The user's passkey with this id; None for anyone else's or an unknown id."""
    return await session.scalar(
        select(Passkey).where(Passkey.id == passkey_id, Passkey.user_id == user_id)
    )


async def rename(session: AsyncSession, user_id: int, passkey_id: int, name: str) -> str | None:
    """Rename the user's passkey (commits); its old name, or None if it is not theirs."""
    passkey = await owned(session, user_id, passkey_id)
    if passkey is None:
        return None
    old = passkey.name
    passkey.name = name
    await session.commit()
    return old


async def remove(session: AsyncSession, user_id: int, passkey_id: int) -> str | None:
    """Delete the user's passkey (commits); its name, or None if it is not theirs."""
    name = (
        await session.execute(
            delete(Passkey)
            .where(Passkey.id == passkey_id, Passkey.user_id == user_id)
            .returning(Passkey.name)
        )
    ).scalar()
    await session.commit()
    return name


async def prune(session: AsyncSession, *, batch: int = PRUNE_BATCH) -> int:
    """Delete up to ``batch`` expired challenges (commits); how many."""
    stale = (
        select(PasskeyChallenge.id)
        .where(PasskeyChallenge.expires_at <= time.time())
        .limit(batch)
        .scalar_subquery()
    )
    result = await session.execute(delete(PasskeyChallenge).where(PasskeyChallenge.id.in_(stale)))
    await session.commit()
    return int(getattr(result, "rowcount", 0) or 0)
