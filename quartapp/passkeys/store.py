"""The passkeys in the database: challenges handed out and claimed, credentials kept.

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
from sqlalchemy.ext.asyncio import AsyncSession

from ..db import Passkey, PasskeyChallenge, User
from .ceremony import CHALLENGE_LIFETIME, challenge_key

PURPOSES = frozenset({"register", "login", "confirm"})
CHALLENGE_BYTES = 32
USER_HANDLE_BYTES = 32
PRUNE_BATCH = 500
# Sign-in challenges one network may hold at once. Anyone may ask for one, and each is a
# row for 5 minutes: without a bound, a flood of requests for options would grow the
# table as fast as it is sent. A person needs one per sign-in page; a household or an
# office behind one address, a few. Over it, the options request is a 429.
CHALLENGES_PER_NETWORK = 30


async def new_challenge(
    session: AsyncSession,
    purpose: str,
    user_id: int | None,
    handle: bytes | None = None,
    *,
    network: str | None = None,
) -> bytes:
    """Make a challenge for one ceremony and keep it for its lifetime (commits).

    ``handle``: a registration's user handle, kept until the answer comes back.
    ``network``: an anonymous sign-in's asker (see :func:`new_signin_challenge`).
    """
    if purpose not in PURPOSES:
        raise ValueError(f"unknown purpose {purpose!r}")
    challenge = secrets.token_bytes(CHALLENGE_BYTES)
    session.add(
        PasskeyChallenge(
            id=challenge_key(challenge),
            purpose=purpose,
            user_id=user_id,
            expires_at=time.time() + CHALLENGE_LIFETIME,
            user_handle=handle,
            network=network,
        )
    )
    await session.commit()
    return challenge


async def new_signin_challenge(session: AsyncSession, network: str) -> bytes | None:
    """A sign-in's challenge for a client of ``network`` (its widest: an IPv4 address or
    an IPv6 /48); None, and nothing written, when that network already holds
    CHALLENGES_PER_NETWORK live ones (commits).
    """
    held = await session.scalar(
        select(func.count())
        .select_from(PasskeyChallenge)
        .where(PasskeyChallenge.network == network, PasskeyChallenge.expires_at > time.time())
    )
    if (held or 0) >= CHALLENGES_PER_NETWORK:
        return None
    return await new_challenge(session, "login", None, network=network)


@dataclass(frozen=True)
class Claimed:
    """A live challenge, used up; the user handle it was made with, for a registration."""

    handle: bytes | None


async def claim_challenge(
    session: AsyncSession, challenge: bytes, purpose: str, user_id: int | None
) -> Claimed | None:
    """Use up a challenge (commits); None unless it was live, for this purpose and user.

    A challenge is gone after its first answer, right or wrong, so none is tried twice.
    """
    row = (
        await session.execute(
            delete(PasskeyChallenge)
            .where(PasskeyChallenge.id == challenge_key(challenge))
            .returning(
                PasskeyChallenge.purpose,
                PasskeyChallenge.user_id,
                PasskeyChallenge.expires_at,
                PasskeyChallenge.user_handle,
            )
        )
    ).first()
    await session.commit()
    if row is None:
        return None
    if row.purpose != purpose or row.user_id != user_id or row.expires_at <= time.time():
        return None
    return Claimed(None if row.user_handle is None else bytes(row.user_handle))


async def for_user(session: AsyncSession, user_id: int) -> Sequence[Passkey]:
    """A user's passkeys, oldest first."""
    rows = await session.scalars(
        select(Passkey).where(Passkey.user_id == user_id).order_by(Passkey.id)
    )
    return rows.all()


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
    insert, and the caller refuses it.
    """
    if await count(session, user_id) >= most:
        return None
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
