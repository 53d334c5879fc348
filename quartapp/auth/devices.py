"""Device cookies (OWASP): a browser that has logged in as a user is known next time.

After a successful login the browser gets a device cookie holding a signed random
nonce, and the ``devices`` table a row keyed by the nonce's SHA-256. While strangers
keep that username locked, attempts from a browser whose cookie has a row for the
user count against the device instead (:mod:`.throttle`), with a small limit of their
own, so the owner can still log in. A cookie without a row (forged, another user's,
or from before a password change, ``users revoke-sessions`` or deleting the user) is
ignored.

Neither the cookie's name nor its value says whose it is: the name is a keyed hash of
the username, the value a signed nonce. A user mints at most
``DEVICES_MINTED_PER_WINDOW`` rows per ``LOGIN_FAILURE_WINDOW`` and keeps at most
``DEVICES_PER_USER``, so no one can hoard device budgets.

An owner locked out on a new browser gets one from a browser where they are logged
in: the sessions page makes a one-time code (:func:`new_code`) that the new browser
enters (:func:`redeem`).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass

from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

# The base of werkzeug's and Quart's responses: a redirect or a JSON answer.
from werkzeug.sansio.response import Response as WerkzeugResponse

from ..db import db
from .models import Device, DeviceCode, User
from .settings import AuthSettings

# A new salt for the nonce-only format: the old ``[username, nonce]`` cookies fail
# their signature and are ignored.
SALT = "quartapp.device.v2"
PREFIX = "device-"
# Browsers accept a __Host- cookie only if it is Secure, has Path=/ and no Domain, so
# no subdomain and no plain-HTTP page can plant or overwrite it (ASVS 3.3.3).
HOST_PREFIX = "__Host-"
# Domain separation: the SECRET_KEY also signs sessions and keys other hashes.
_NAME_CONTEXT = b"quartapp.devices.cookie-name\0"
NAME_DIGITS = 16
NONCE_LENGTH = 22  # secrets.token_urlsafe(16)

# The codes of "Trust a new device": 12 characters from 32 that are hard to misread
# (no 0/O, 1/I), 60 bits, typed in by hand within CODE_LIFETIME seconds.
CODE_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
CODE_LENGTH = 12
CODE_LIFETIME = 600


def digest(secret: str) -> str:
    """The stored form of a nonce or a code."""
    return hashlib.sha256(secret.encode()).hexdigest()


def _keys(config: AuthSettings) -> list[str | bytes]:
    return [config.site.secret_key, *config.site.secret_key_fallbacks]


def _serializer(config: AuthSettings) -> URLSafeTimedSerializer:
    # Old keys still verify, so rotating SECRET_KEY does not forget every device.
    keys = [*config.site.secret_key_fallbacks, config.site.secret_key]
    return URLSafeTimedSerializer(keys, salt=SALT)


def _name(key: str | bytes, username: str, *, secure: bool) -> str:
    raw = key.encode() if isinstance(key, str) else key
    mac = hmac.new(raw, _NAME_CONTEXT + username.encode(), hashlib.sha256).hexdigest()
    return f"{HOST_PREFIX if secure else ''}{PREFIX}{mac[:NAME_DIGITS]}"


def cookie_name(config: AuthSettings, username: str) -> str:
    """The name of ``username``'s device cookie: one per user, saying nothing of whose.

    An HMAC of the username keyed with SECRET_KEY, so that a name cannot be matched to
    a username by hashing a list of them; ``__Host-`` in front when cookies are Secure.
    """
    return _name(config.site.secret_key, username, secure=config.site.session_cookie_secure)


def presented(cookies: Mapping[str, str], config: AuthSettings, username: str) -> str | None:
    """The nonce of a validly signed device cookie for ``username``, if the request has one.

    Only the signature and age are checked here; :func:`trusted` also asks the database.
    A cookie named with a fallback key (before a key rotation) is still read.
    """
    secure = config.site.session_cookie_secure
    max_age = config.device_cookie_days * 86400
    for key in _keys(config):
        value = cookies.get(_name(key, username, secure=secure))
        if not value:
            continue
        try:
            nonce = _serializer(config).loads(value, max_age=max_age)
        except BadSignature:
            continue
        if isinstance(nonce, str) and len(nonce) == NONCE_LENGTH:
            return nonce
    return None


async def trusted(config: AuthSettings, cookies: Mapping[str, str], username: str) -> str | None:
    """The id of the device record behind this request's cookie for ``username``, if any.

    That is the key its login attempts are counted under. Costs one query, and only for
    a request that carries a validly signed cookie under this username's name, which
    nobody can make without the SECRET_KEY.
    """
    nonce = presented(cookies, config, username)
    if nonce is None:
        return None
    oldest = time.time() - config.device_cookie_days * 86400
    query = (
        select(Device.id)
        .join(User, User.id == Device.user_id)
        .where(Device.id == digest(nonce), User.username == username, Device.last_used > oldest)
    )
    async with db.session() as session:
        return (await session.execute(query)).scalar_one_or_none()


async def remember(
    session: AsyncSession,
    config: AuthSettings,
    user_id: int,
    *,
    known: str | None,
    nonce: str | None,
) -> str | None:
    """After a right password: the nonce for the browser's device cookie, or None (no commit).

    ``known`` is the record :func:`trusted` found before the check, ``nonce`` the one
    the browser :func:`presented`. A known device is marked used and keeps its nonce;
    any other browser gets a new record, unless the user has minted their share this
    window (then None: the login goes on, without a device cookie).
    """
    now = time.time()
    if known is not None and nonce is not None and digest(nonce) == known:
        touched = await session.execute(
            update(Device)
            .where(Device.id == known, Device.user_id == user_id)
            .values(last_used=now)
        )
        if getattr(touched, "rowcount", 0):
            return nonce
        # Forgotten meanwhile (a password change in another request): a new one.
    return await mint(session, config, user_id)


async def mint(session: AsyncSession, config: AuthSettings, user_id: int) -> str | None:
    """A new device record for the user and its nonce; None past the mint cap (no commit).

    The least recently used records beyond ``DEVICES_PER_USER`` are dropped.
    """
    now = time.time()
    # Parallel logins of one user queue on the user's row (PostgreSQL), so each counts
    # the others' mints. NO KEY UPDATE, because each already holds the KEY SHARE lock
    # its new logins row took on the user: FOR UPDATE would deadlock two of them.
    # SQLite has no row locks; every caller has written already, so it holds the
    # database's write lock, and the statement would only be a trip to its thread.
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(
            select(User.id).where(User.id == user_id).with_for_update(key_share=True)
        )
    window = config.login_failure_window
    recent = select(func.count()).where(
        Device.user_id == user_id, Device.created_at > now - window
    )
    if (await session.execute(recent)).scalar_one() >= config.devices_minted_per_window:
        return None
    nonce = secrets.token_urlsafe(16)
    session.add(Device(id=digest(nonce), user_id=user_id, created_at=now, last_used=now))
    await session.flush()
    kept = (
        select(Device.id)
        .where(Device.user_id == user_id)
        .order_by(Device.last_used.desc(), Device.id)
        .limit(config.devices_per_user)
    )
    await session.execute(
        delete(Device).where(Device.user_id == user_id, Device.id.not_in(kept.scalar_subquery()))
    )
    return nonce


async def forget_all(session: AsyncSession, user_id: int, *, keep: str | None = None) -> int:
    """Forget a user's devices, except the record ``keep`` (no commit); how many."""
    query = delete(Device).where(Device.user_id == user_id)
    if keep is not None:
        query = query.where(Device.id != keep)
    result = await session.execute(query)
    return int(getattr(result, "rowcount", 0) or 0)


async def count(session: AsyncSession, config: AuthSettings, user_id: int) -> int:
    """How many devices are trusted for the user now (what the sessions page says)."""
    oldest = time.time() - config.device_cookie_days * 86400
    query = select(func.count()).where(Device.user_id == user_id, Device.last_used > oldest)
    return int((await session.execute(query)).scalar_one())


def set_cookie(
    response: WerkzeugResponse, config: AuthSettings, username: str, nonce: str
) -> None:
    """Give the browser (or renew) its device cookie for ``username``."""
    secure = config.site.session_cookie_secure
    response.set_cookie(
        cookie_name(config, username),
        _serializer(config).dumps(nonce),
        max_age=config.device_cookie_days * 86400,
        path="/",
        secure=secure,
        httponly=True,
        samesite="Lax",
    )


# Trusting a new device with a one-time code


def format_code(code: str) -> str:
    """A code as shown: in groups of four, ``ABCD-EFGH-JKLM``."""
    return "-".join(code[i : i + 4] for i in range(0, len(code), 4))


def normalize_code(text: str) -> str | None:
    """A typed code in its stored form (case, spaces and dashes don't matter), or None."""
    code = "".join(text.split()).replace("-", "").upper()
    if len(code) != CODE_LENGTH or any(char not in CODE_ALPHABET for char in code):
        return None
    return code


async def new_code(session: AsyncSession, user_id: int) -> str:
    """Make the user's one live code, replacing any other (commits); the code to show."""
    code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
    await session.execute(delete(DeviceCode).where(DeviceCode.user_id == user_id))
    session.add(
        DeviceCode(id=digest(code), user_id=user_id, expires_at=time.time() + CODE_LIFETIME)
    )
    await session.commit()
    return code


@dataclass(frozen=True)
class Redeemed:
    """A code that was live: whose it is, and the new device's nonce (None past the cap)."""

    username: str
    nonce: str | None


async def redeem(session: AsyncSession, config: AuthSettings, code: str) -> Redeemed | None:
    """Use up a live code and mint a device for its user (commits); None if not live.

    A refused mint keeps the code, so the owner can try again within its lifetime.
    """
    key = digest(code)
    # A wrong code costs a read, never a write: guessing takes no write lock.
    if (await session.execute(select(DeviceCode.id).where(DeviceCode.id == key))).first() is None:
        return None
    # The DELETE decides between two browsers redeeming one code at once.
    row = (
        await session.execute(
            delete(DeviceCode)
            .where(DeviceCode.id == key)
            .returning(DeviceCode.user_id, DeviceCode.expires_at)
        )
    ).first()
    if row is None or row.expires_at <= time.time():
        await session.commit()  # an expired code is used up all the same
        return None
    username = (
        await session.execute(select(User.username).where(User.id == row.user_id))
    ).scalar_one()
    nonce = await mint(session, config, row.user_id)
    if nonce is None:
        await session.rollback()
        return Redeemed(username, None)
    await session.commit()
    return Redeemed(username, nonce)
