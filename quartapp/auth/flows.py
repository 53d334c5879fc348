"""The operations that change who may sign in to an account, shared by the web and the CLI.

Each is one function, so a security-critical sequence exists once: the account page
and ``users set-password`` change a password through :func:`change_password`, and "log
out everywhere else", ``users revoke-sessions`` and ``users reset-2fa`` end logins
through :func:`end_logins`, and ``/account/delete`` and ``users delete`` delete an
account through :func:`delete_account`. A view parses the request, calls a flow and renders; a CLI
command parses its arguments, calls the same flow and prints. A flow takes the
database session it works in (the app's, or the CLI's own engine's), commits it, and
announces what happened with a signal, which the audit log, the metrics and the
first-run clean-up receive.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from .. import signals
from . import devices, logins, registry, users
from .models import DeviceCode, User
from .passwords import Passwords
from .settings import AuthSettings

# (session, the new user): what a caller writes in the new account's transaction.
AccountMade = Callable[[AsyncSession, User], Awaitable[None]]


async def create_account(
    dbs: AsyncSession,
    config: AuthSettings,
    hasher: Passwords,
    *,
    name: str,
    password: str,
    then: AccountMade | None = None,
) -> User:
    """Create an account (commits): ``users create`` and ``/register`` alike.

    In order: the username's rules and whether it is free, the password policy (both
    raise :class:`~.users.AccountError`, nothing written), the hash (no connection held
    while argon2 runs), then one transaction: the user and what ``then`` writes with
    it (sign-up's unconfirmed registration, its address and its link). The unique
    index decides a race for the name: the loser gets the same AccountError and
    nothing of it is kept. ``user_created`` is sent.
    """
    username = await users.available_username(dbs, config, name)
    await users.vet_password(password, config, username=username)
    await dbs.rollback()  # no connection held while argon2 runs
    password_hash = await hasher.hash(password)
    user = User(username=username, password_hash=password_hash)
    dbs.add(user)
    try:
        await dbs.flush()
        if then is not None:
            await then(dbs, user)
        await dbs.commit()
    except IntegrityError:
        await dbs.rollback()
        raise users.AccountError(f"a user named {username!r} already exists") from None
    signals.send(signals.user_created, username=username)
    return user


@dataclass(frozen=True)
class ThisBrowser:
    """The login a password change keeps: the browser that proved the old password.

    Its login is rotated to a new token (the old cookie logs nobody in), and it gets a
    new trusted-device cookie, since it just proved the password.
    """

    login_id: str
    address: str | None
    user_agent: str | None


@dataclass(frozen=True)
class PasswordChanged:
    """What :func:`change_password` did."""

    # How many other logins ended.
    ended: int
    # The kept browser's new login token, or None: none was kept, or it was ended by
    # another request meanwhile.
    token: str | None = None
    # The kept browser's new trusted-device nonce, or None.
    nonce: str | None = None


async def change_password(
    dbs: AsyncSession,
    config: AuthSettings,
    hasher: Passwords,
    *,
    user_id: int,
    username: str,
    new_password: str,
    keep: ThisBrowser | None = None,
    record: Callable[[AsyncSession], Awaitable[None]] | None = None,
) -> PasswordChanged:
    """Set a new password, and end everything the old one let in (commits).

    In order: the policy (raises :class:`~.users.AccountError`, nothing changed), the
    hash (before any statement of this flow, so the session holds no connection for it
    while argon2 runs), then one transaction: ``record`` (what the proof of the old
    password leaves behind, the throttle's reset), the new hash, the kept login rotated,
    every other login ended with what features end with them (half-done sign-ins,
    unconfirmed TOTP keys), every trusted device forgotten and, for a kept browser, a new
    one minted, and what features do with a new password (the registry's
    ``password_changing``: mail ends reset links and writes its notice). Then
    ``password_changed`` is sent.
    """
    await users.vet_password(new_password, config, username=username)
    new_hash = await hasher.hash(new_password)
    if record is not None:
        await record(dbs)
    await users.store_password_hash(dbs, user_id, new_hash)
    token = None
    if keep is not None:
        token = await logins.rotate(
            dbs, config, keep.login_id, address=keep.address, user_agent=keep.user_agent
        )
    ended = await logins.end_all(dbs, user_id, keep=logins.digest(token) if token else None)
    # Device cookies made under the old password are worth nothing now; the browser
    # that just proved the password starts over with a new one.
    await devices.forget_all(dbs, user_id)
    nonce = await devices.mint(dbs, config, user_id) if keep is not None else None
    await registry.password_changing(dbs, user_id)
    await dbs.commit()
    signals.send(signals.password_changed, username=username, sessions_ended=ended)
    return PasswordChanged(ended, token, nonce)


async def end_logins(
    dbs: AsyncSession,
    *,
    user_id: int,
    username: str,
    keep_login: str | None = None,
    keep_device: str | None = None,
) -> int:
    """End every login of a user but ``keep_login``, and forget their trusted devices
    but ``keep_device`` (commits); how many logins ended.

    What features keep with a login (half-done sign-ins, unconfirmed TOTP keys) ends in
    the same transaction. ``session_ended`` is sent with ``everywhere=True``.
    """
    ended = await logins.end_all(dbs, user_id, keep=keep_login)
    await devices.forget_all(dbs, user_id, keep=keep_device)
    await dbs.commit()
    signals.send(signals.session_ended, username=username, count=ended, everywhere=True)
    return ended


# Domain separation from the session cookie's signing key and the audit log's hash of
# mistyped usernames, which are keyed with the same SECRET_KEY.
_PSEUDONYM_CONTEXT = b"quartapp.account.deleted\0"


def pseudonym(config: AuthSettings, username: str) -> str:
    """What the audit log keeps of a deleted account's name: a keyed hash, not the name.

    HMAC-SHA256 keyed with SECRET_KEY, the first 16 hex digits: whoever holds the key
    (the operator, asked about one name) can tell whether that name's account was
    deleted; a reader of the log alone cannot list the names, nor confirm a guess.
    """
    digest = hmac.new(
        config.site.secret_key.encode(), _PSEUDONYM_CONTEXT + username.encode(), hashlib.sha256
    ).hexdigest()
    return f"hmac-sha256:{digest[:16]}"


async def delete_account(
    dbs: AsyncSession,
    config: AuthSettings,
    *,
    user_id: int,
    username: str,
    by: str,
) -> int:
    """Delete an account and every row that is the person's (commits); how many logins
    ended. ``by`` is who asked: ``"user"`` (the account page) or ``"admin"`` (the CLI).

    One transaction: what features do first (the registry's ``account_deleting``: mail
    writes the last email, to the confirmed address, and deletes the person's unsent
    mail, links and address), every login ended (with what features end with them; on
    PostgreSQL the delete notifies every process's login cache, so every other session
    ends at once, everywhere), the throttle's counters of the name and its devices, the
    trusted devices and their codes, then the user's row, which takes the rest (second
    factors, passkeys) with it by ``ON DELETE CASCADE``. Raises
    :class:`~.users.AccountError`, nothing changed, when the account is gone already.
    Then ``user_deleted`` is sent with the name's :func:`pseudonym`, never the name.
    """
    await registry.account_deleting(dbs, user_id, username, by)
    ended = await logins.end_all(dbs, user_id)
    # Before the devices: their counters are found through them.
    await users.clear_counters(dbs, user_id, username)
    await devices.forget_all(dbs, user_id)
    await dbs.execute(delete(DeviceCode).where(DeviceCode.user_id == user_id))
    result = await dbs.execute(delete(User).where(User.id == user_id))
    if not getattr(result, "rowcount", 0):
        # Deleted meanwhile by another request or command: undo the features' work.
        await dbs.rollback()
        raise users.AccountError(f"no user named {username!r}")
    await dbs.commit()
    signals.send(
        signals.user_deleted, pseudonym=pseudonym(config, username), by=by, sessions_ended=ended
    )
    return ended
