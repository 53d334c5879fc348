"""The operations of mail that change an account's address, shared by the pages and
the CLI, and the limit every link sent from a page counts against.

Password reset is in :mod:`.reset`.

- :func:`over_limits`: one more link to an address, from a client's network;
- :func:`start_change` / :func:`confirm_change`: a new address, confirmed by a link
  sent to it, while the old one stays in force;
- :func:`set_by_admin`: ``users set-email`` and ``users create --email``.

Each takes the database session it works in and commits it; every message is written
to the outbox in the transaction of the change it reports.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import Enum

from sqlalchemy.ext.asyncio import AsyncSession

from ..auth import throttle
from ..auth.settings import AuthSettings
from ..auth.throttle import Counter
from . import addresses, notify, outbox, tokens
from .addresses import AddressError, Normal
from .settings import MailSettings

log = logging.getLogger("quartapp.mail")

# The throttle's scopes (at most 8 characters): reset requests per address and per
# client network, each counted over an hour.
RESET_SCOPE = "reset"
RESET_NETWORK_SCOPE = "resetnet"
RESET_WINDOW = 3600
# Confirmation links from /account/email, counted apart from resets at the same limits:
# per new address, and per client network, so the page cannot be used to flood a
# stranger's mailbox (or get the site's domain blocked) any faster than resets can.
EMAIL_SCOPE = "email"
EMAIL_NETWORK_SCOPE = "emailnet"
# (per address, per network)
RESET_SCOPES = (RESET_SCOPE, RESET_NETWORK_SCOPE)
EMAIL_SCOPES = (EMAIL_SCOPE, EMAIL_NETWORK_SCOPE)
# Where an address confirmation link opens (views.confirm_link).
CONFIRM_PATH = "/account/email/confirm"


async def over_limits(
    dbs: AsyncSession,
    settings: MailSettings,
    config: AuthSettings,
    scopes: tuple[str, str],
    *,
    client: str | None,
    key: str,
) -> bool:
    """Count one more mail to ``key`` from ``client``'s network, over an hour; whether
    either limit is past (then the count is committed and nothing else is done)."""
    by_address, by_network = scopes
    wanted = [
        Counter(
            by_network, throttle.address_key(client, config), settings.reset_requests_per_network
        ),
        Counter(by_address, key, settings.reset_requests_per_email),
    ]
    if await throttle.count(dbs, config, wanted, window=RESET_WINDOW) is None:
        return False
    await dbs.commit()
    return True


class Change(Enum):
    """What :func:`start_change` did; the page says the same for SENT and TAKEN."""

    SENT = "sent"
    TAKEN = "taken"
    SAME = "same"
    LIMITED = "limited"


async def start_change(
    dbs: AsyncSession,
    settings: MailSettings,
    *,
    user_id: int,
    username: str,
    normal: Normal,
    config: AuthSettings | None = None,
    client: str | None = None,
) -> Change:
    """Send a link that confirms ``normal`` as the user's address, and tell the old one
    (commits).

    Until the link is followed the old address stays in force. An address that is
    another account's gets the same answer on the page, but no link (so no one can
    learn which addresses have accounts, nor use this page to mail strangers); the old
    address is told either way, so even the owner's own mailbox does not tell the two
    apart. From a page (``config`` given), links are limited per new address and per
    client network, over an hour, at the reset limits (LIMITED: nothing is sent); an
    admin's ``users set-email`` is not limited.
    """
    if config is not None and await over_limits(
        dbs, settings, config, EMAIL_SCOPES, client=client, key=normal.key
    ):
        return Change.LIMITED
    current = await addresses.of_user(dbs, user_id)
    if (
        current is not None
        and current.confirmed_at is not None
        and current.address_key == (normal.key)
    ):
        return Change.SAME
    owner = await addresses.owner(dbs, normal.key)
    taken = owner is not None and owner != user_id
    if not taken:
        token = await tokens.issue(
            dbs, user_id=user_id, purpose=tokens.EMAIL, address=normal.address
        )
        await outbox.enqueue(
            dbs,
            settings,
            kind="email-confirm",
            to=normal.address,
            subject="Confirm your email address",
            template="confirm_email",
            user_id=user_id,
            username=username,
            link=tokens.link(settings, CONFIRM_PATH, token),
            minutes=tokens.LIFETIMES[tokens.EMAIL] // 60,
        )
    if current is not None and current.confirmed_at is not None and settings.notifies("EMAIL"):
        await notify.notice(
            dbs,
            settings,
            user_id=user_id,
            username=username,
            kind="email-change-requested",
            subject="A change of your email address was requested",
            what=f"A change of your account's email address to {normal.address} was"
            " requested. This address stays in force until the new one is confirmed from"
            " a link sent to it.",
        )
    await dbs.commit()
    return Change.TAKEN if taken else Change.SENT


@dataclass(frozen=True)
class Confirmed:
    """What :func:`confirm_change` did: whose address is now ``address``."""

    user_id: int
    address: str


async def confirm_change(dbs: AsyncSession, settings: MailSettings, *, token: str) -> Confirmed:
    """Spend a confirmation link and make its address the account's (commits).

    Raises :class:`~.tokens.LinkRefused` for a link that is not live, and :class:`AddressError`
    when another account confirmed the address first (nothing changes; the link is
    not spent). Ends the user's reset links (they went to the old address) and tells
    the old address.
    """
    spent = await tokens.spend(dbs, token, tokens.EMAIL)
    if spent is None:
        await dbs.rollback()
        raise tokens.LinkRefused
    old = await addresses.confirmed(dbs, spent.user_id)
    normal = addresses.normalise(spent.address)
    await addresses.store(dbs, spent.user_id, normal, confirmed=True)  # rolls back if taken
    await _address_changed(dbs, settings, spent.user_id, old, normal.address)
    await dbs.commit()
    return Confirmed(spent.user_id, normal.address)


async def _address_changed(
    dbs: AsyncSession, settings: MailSettings, user_id: int, old: str | None, new: str
) -> None:
    """In the change's transaction: end the reset links, tell the old address."""
    await tokens.end(dbs, user_id, tokens.RESET)
    username = await dbs.scalar(addresses.username_query(user_id))
    log.info("email address changed for %s", username)
    if old is None or old.lower() == new.lower() or not settings.notifies("EMAIL"):
        return
    await notify.notice(
        dbs,
        settings,
        user_id=user_id,
        username=username or "",
        kind="email-changed",
        subject="Your email address was changed",
        what=f"The email address of your account was changed to {new}. Mail about your"
        " account no longer comes to this address.",
        to=old,
    )


async def set_by_admin(
    dbs: AsyncSession,
    settings: MailSettings,
    *,
    user_id: int,
    username: str,
    text: str,
    confirmed: bool,
) -> str:
    """``users set-email`` (and ``users create --email``): the line to print (commits).

    ``confirmed``: the admin vouches for the address, which takes effect at once (the
    old one is told). Otherwise a confirmation link goes to it, as from the account
    page; a user without an address gets it stored unconfirmed meanwhile.
    """
    normal = addresses.normalise(text)
    if confirmed:
        old = await addresses.confirmed(dbs, user_id)
        await addresses.store(dbs, user_id, normal, confirmed=True)
        await tokens.end(dbs, user_id, tokens.EMAIL)
        await _address_changed(dbs, settings, user_id, old, normal.address)
        await dbs.commit()
        return f"set the email address of {username!r} to {normal.address!r} (confirmed)"
    if not settings.on:
        raise AddressError("mail is off (MAIL_URL), so no confirmation link can be sent")
    if await addresses.owner(dbs, normal.key) not in (None, user_id):
        raise AddressError(f"{normal.address!r} is another account's address")
    if await addresses.of_user(dbs, user_id) is None:
        # Shown by `users list` as unconfirmed until the link is followed.
        await addresses.store(dbs, user_id, normal, confirmed=False)
    await start_change(dbs, settings, user_id=user_id, username=username, normal=normal)
    return f"sent a confirmation link to {normal.address!r} for {username!r}"
