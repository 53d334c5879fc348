"""The operations that change who may sign in to an account, shared by the web and the CLI.

Each is one function, so a security-critical sequence exists once: the account page
and ``users set-password`` change a password through :func:`change_password`, and "log
out everywhere else", ``users revoke-sessions`` and ``users reset-2fa`` end logins
through :func:`end_logins`. A view parses the request, calls a flow and renders; a CLI
command parses its arguments, calls the same flow and prints. A flow takes the
database session it works in (the app's, or the CLI's own engine's), commits it, and
announces what happened with a signal, which the audit log, the metrics and the
first-run clean-up receive.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from .. import signals
from . import devices, logins, registry, users
from .models import User
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
