"""Password reset by mail, shared by the pages and the CLI.

- :func:`request_reset`: a reset link by mail, or nothing, with the same answer and
  the same work whether or not the address has an account;
- :func:`reset_password`: spend a reset link and set the password through auth's one
  password flow (:func:`quartapp.auth.flows.change_password`).

Each takes the database session it works in and commits it; every message is written
to the outbox in the transaction of the change it reports.
"""

from __future__ import annotations

import secrets
from enum import Enum
from typing import Any

from sqlalchemy import false, insert, literal, select
from sqlalchemy.ext.asyncio import AsyncSession

from ..auth import flows as auth_flows
from ..auth.passwords import Passwords
from ..auth.settings import AuthSettings
from . import addresses, message, outbox, tokens
from .addresses import Normal
from .flows import RESET_SCOPES, over_limits
from .models import MailToken, OutboxMessage
from .settings import MailSettings

# Where a reset link opens (views.reset_link).
RESET_PATH = "/reset_password"


class Requested(Enum):
    """What :func:`request_reset` did; the page a client sees is the same for each."""

    SENT = "sent"
    UNKNOWN = "unknown"
    LIMITED = "limited"


async def request_reset(
    dbs: AsyncSession,
    settings: MailSettings,
    config: AuthSettings,
    *,
    normal: Normal,
    client: str | None,
) -> Requested:
    """Write a reset link to the outbox if ``normal`` is an account's confirmed address
    (commits).

    In one transaction: the throttle's counts (per client network, then per address,
    over an hour; over either limit nothing else is done), the account's lookup, then
    either a new token (ending older ones) and its message, or the same work for
    nothing: the same statements, matching no row, and the same message rendered and
    dropped (or, with ``MAIL_UNKNOWN_ADDRESS_NOTICE``, a "no account uses this
    address" message). So the two answers cost the same round trips and rendering.
    """
    if await over_limits(dbs, settings, config, RESET_SCOPES, client=client, key=normal.key):
        return Requested.LIMITED
    account = await addresses.account_for(dbs, normal.key)
    if account is not None:
        token = await tokens.issue(
            dbs, user_id=account.user_id, purpose=tokens.RESET, address=account.address
        )
        await outbox.enqueue(
            dbs,
            settings,
            kind="password-reset",
            to=account.address,
            subject="Reset your password",
            template="reset_password",
            user_id=account.user_id,
            username=account.username,
            link=tokens.link(settings, RESET_PATH, token),
            minutes=tokens.LIFETIMES[tokens.RESET] // 60,
        )
        await dbs.commit()
        return Requested.SENT
    await _same_work_for_nobody(dbs, settings, normal)
    await dbs.commit()
    return Requested.UNKNOWN


async def _same_work_for_nobody(dbs: AsyncSession, settings: MailSettings, normal: Normal) -> None:
    """What :func:`request_reset` does for a known address, with nothing to show for it.

    :func:`tokens.issue`'s UPDATE (for user 0, whom no token has), an INSERT of a token
    row that selects nothing (``INSERT ... SELECT ... WHERE false``), the reset message
    rendered, and the same empty INSERT into the outbox (or, with
    ``MAIL_UNKNOWN_ADDRESS_NOTICE``, the unknown-address notice, written for real): the
    same statements on the same tables as the known path, in the same order.
    """
    await tokens.end(dbs, 0, tokens.RESET)
    decoy = secrets.token_urlsafe(32)
    await _insert_nothing(dbs, MailToken.__table__, MailToken.id, tokens.digest(decoy))
    if settings.mail_unknown_address_notice:
        await outbox.enqueue(
            dbs,
            settings,
            kind="reset-unknown",
            to=normal.address,
            subject="Reset your password",
            template="unknown_address",
            address=normal.address,
            request_url=f"{settings.base_url}/reset_password_request",
        )
        return
    await message.build(
        settings,
        to=normal.address,
        subject="Reset your password",
        template="reset_password",
        username="",
        link=tokens.link(settings, RESET_PATH, decoy),
        minutes=tokens.LIFETIMES[tokens.RESET] // 60,
    )
    await _insert_nothing(dbs, OutboxMessage.__table__, OutboxMessage.kind, "password-reset")


async def _insert_nothing(dbs: AsyncSession, table: Any, column: Any, value: str) -> None:
    """An INSERT into ``table`` that writes no row: the known path's INSERT, for timing."""
    await dbs.execute(
        insert(table).from_select([column.key], select(literal(value)).where(false()))
    )


async def reset_password(
    dbs: AsyncSession,
    config: AuthSettings,
    hasher: Passwords,
    *,
    token: str,
    new_password: str,
) -> str:
    """Spend a reset link and set the new password (commits); the account's username.

    Raises :class:`~.tokens.LinkRefused` for a link that is not live, and
    :class:`~quartapp.auth.users.AccountError` for a password the policy refuses (the
    link stays live, to try another). The link is read first, so a dead one costs no
    hashing; it is spent inside the password's transaction
    (:func:`~quartapp.auth.flows.change_password`'s ``record``), so of two requests
    with one link exactly one changes the password, and a failure spends nothing.
    The flow ends every login and trusted device, and the ``password_changing`` hook
    writes "your password was changed" and ends the user's other reset links.
    """
    found = await tokens.live(dbs, token, tokens.RESET)
    if found is None:
        raise tokens.LinkRefused
    username = await dbs.scalar(
        addresses.username_query(found.user_id)  # the account may have been renamed
    )
    await dbs.rollback()  # no connection held while argon2 runs
    if username is None:
        raise tokens.LinkRefused

    async def spend(session: AsyncSession) -> None:
        spent = await tokens.spend(session, token, tokens.RESET)
        if spent is None or spent.user_id != found.user_id:
            raise tokens.LinkRefused

    await auth_flows.change_password(
        dbs,
        config,
        hasher,
        user_id=found.user_id,
        username=username,
        new_password=new_password,
        record=spend,
    )
    return username
