"""Security notifications: each change to an account, told to its confirmed address.

Each is a ``MAIL_NOTIFY_*`` setting, on by default, and says what happened, when,
from where (address and browser), and what to do if it wasn't the owner. They come
from two places:

- In the transaction of the change, where the change gives us one: a new password
  (auth's ``password_changing`` hook, run inside :func:`quartapp.auth.flows.change_password`
  for the account page, ``users set-password`` and a reset alike), and a change of
  address (this feature's own flow). The notice exists exactly when the change does.
- From the signals (as the audit log and the metrics do) for the rest: two-factor on
  or off, recovery codes used or made anew, a passkey added or removed, a sign-in from
  a new device. Those signals are sent after their change committed, so the receiver
  writes the row in its own short transaction, run before the response goes out
  (``after_this_request``). The trade-off: a crash, or a database failure, between the
  change's commit and that write loses the notice (the change stands; the failure is
  logged). Signals sent from the command line (``users reset-2fa``) have no request,
  and write no notice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from quart import after_this_request, g, has_request_context, request
from quart.wrappers import Response
from sqlalchemy import delete, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession
from werkzeug.wrappers import Response as WerkzeugResponse

from .. import signals
from ..auth.models import User
from ..db import db
from ..web.display import browser_summary
from . import addresses, outbox, tokens
from .models import MailToken, OutboxMessage
from .settings import MailSettings

log = logging.getLogger("quartapp.mail")
AnyResponse = Response | WerkzeugResponse

# Set in ``g`` by the reset view: the password notice then says it was reset by mail.
RESET_FLAG = "mail_password_reset"


@dataclass(frozen=True)
class Where:
    """When and from where a change was made, as a notice tells it."""

    when: str
    address: str
    browser: str

    @classmethod
    def now(cls) -> Where:
        """This request's client, or the command line outside a request."""
        when = datetime.now(UTC).strftime("%-d %B %Y, %H:%M UTC")
        if not has_request_context():
            return cls(when, "the server's command line (an administrator)", "none")
        agent = request.headers.get("User-Agent")
        return cls(when, request.remote_addr or "unknown", browser_summary(agent))


def _context(settings: MailSettings, username: str, where: Where) -> dict[str, Any]:
    return {
        "username": username,
        "when": where.when,
        "from_address": where.address,
        "browser": where.browser,
        "sessions_url": f"{settings.base_url}/account/sessions",
        "reset_url": f"{settings.base_url}/reset_password_request",
    }


async def notice(
    dbs: AsyncSession,
    settings: MailSettings,
    *,
    user_id: int,
    username: str,
    kind: str,
    subject: str,
    what: str,
    where: Where | None = None,
    template: str = "notice",
    to: str | None = None,
) -> bool:
    """Write one notice to the user's confirmed address (or ``to``) (no commit).

    False, and nothing written, when the account has no confirmed address.
    """
    recipient = to or await addresses.confirmed(dbs, user_id)
    if recipient is None:
        return False
    await outbox.enqueue(
        dbs,
        settings,
        kind=kind,
        to=recipient,
        subject=subject,
        template=template,
        user_id=user_id,
        what=what,
        heading=subject,
        **_context(settings, username, where or Where.now()),
    )
    return True


async def password_changing(settings: MailSettings, dbs: AsyncSession, user_id: int) -> None:
    """Auth's ``password_changing`` hook: in the new password's transaction, end the
    user's reset links, and write "your password was changed"."""
    await tokens.end(dbs, user_id, tokens.RESET)
    if not settings.notifies("PASSWORD"):
        return
    username = await dbs.scalar(select(User.username).where(User.id == user_id))
    if username is None:
        return
    reset = has_request_context() and bool(g.get(RESET_FLAG))
    what = (
        "The password of your account was reset with a link sent to this address."
        if reset
        else "The password of your account was changed."
    )
    await notice(
        dbs,
        settings,
        user_id=user_id,
        username=username,
        kind="password-changed",
        subject="Your password was changed",
        what=what,
    )


async def account_deleting(
    settings: MailSettings, dbs: AsyncSession, user_id: int, username: str, by: str
) -> None:
    """Auth's ``account_deleting`` hook: in the deletion's transaction, delete the
    person's outbox rows (unsent mail included), links and address, and write the
    last email, "your account was closed", to the confirmed address.

    The last email is written with no ``user_id``: it is about no account any more.
    """
    # Sent and given-up rows too: their message is erased, but they keep the address
    # and what was sent when. One being delivered right now still goes; its row does not.
    await dbs.execute(delete(OutboxMessage).where(OutboxMessage.user_id == user_id))
    await dbs.execute(delete(MailToken).where(MailToken.user_id == user_id))
    recipient = await addresses.confirmed(dbs, user_id)
    if recipient is not None and settings.on:
        where = Where.now()
        await outbox.enqueue(
            dbs,
            settings,
            kind="account-closed",
            user_id=None,
            to=recipient,
            subject="Your account was closed",
            template="account_closed",
            heading="Your account was closed",
            username=username,
            by=by,
            when=where.when,
            from_address=where.address,
            browser=where.browser,
        )
    await addresses.remove(dbs, user_id)


# Signal -> (setting, kind, subject, what the notice says). ``{name}`` is a passkey's.
SIGNALLED: tuple[tuple[Any, str, str, str, str], ...] = (
    (
        signals.two_factor_enabled,
        "TWO_FACTOR",
        "two-factor-on",
        "Two-factor authentication was turned on",
        "Two-factor authentication was turned on for your account: signing in now needs"
        " a code from an authenticator app as well as the password.",
    ),
    (
        signals.two_factor_disabled,
        "TWO_FACTOR",
        "two-factor-off",
        "Two-factor authentication was turned off",
        "Two-factor authentication was turned off for your account: the password alone"
        " now signs in.",
    ),
    (
        signals.recovery_code_used,
        "RECOVERY_CODES",
        "recovery-code-used",
        "A recovery code was used",
        "One of your account's recovery codes was used to sign in or confirm a change."
        " Each works once.",
    ),
    (
        signals.recovery_codes_renewed,
        "RECOVERY_CODES",
        "recovery-codes-renewed",
        "New recovery codes were made",
        "New recovery codes were made for your account; the old ones no longer work.",
    ),
    (
        signals.passkey_added,
        "PASSKEYS",
        "passkey-added",
        "A passkey was added",
        "A passkey named \u201c{name}\u201d was added to your account: it can sign in"
        " without the password.",
    ),
    (
        signals.passkey_removed,
        "PASSKEYS",
        "passkey-removed",
        "A passkey was removed",
        "The passkey named \u201c{name}\u201d was removed from your account.",
    ),
)


def _after_response(write: Callable[[AsyncSession], Any]) -> None:
    """Run ``write`` in its own transaction before this request's response goes out.

    A failure is logged, never raised: the change it reports has committed already.
    """

    @after_this_request
    async def run(response: AnyResponse) -> AnyResponse:
        try:
            async with db.session() as dbs:
                if await write(dbs):
                    await dbs.commit()
        except (SQLAlchemyError, OSError, TimeoutError) as error:
            log.warning("a security notice was not written: %s", type(error).__name__)
        return response


def _receiver(settings: MailSettings, setting: str, kind: str, subject: str, what: str) -> Any:
    def receive(_sender: object, *, username: str | None = None, **fields: Any) -> None:
        if username is None or not has_request_context() or not settings.notifies(setting):
            return
        where = Where.now()
        text = what.format(name=fields.get("name", ""))

        async def write(dbs: AsyncSession) -> bool:
            user_id = await dbs.scalar(select(User.id).where(User.username == username))
            if user_id is None:
                return False
            return await notice(
                dbs,
                settings,
                user_id=user_id,
                username=username,
                kind=kind,
                subject=subject,
                what=text,
                where=where,
            )

        _after_response(write)

    return receive


def _new_device_receiver(settings: MailSettings) -> Any:
    def receive(
        _sender: object,
        *,
        username: str,
        user_id: int | None = None,
        new_device: bool = False,
        **_: Any,
    ) -> None:
        if not new_device or user_id is None or not has_request_context():
            return
        if not settings.notifies("NEW_DEVICE"):
            return
        where = Where.now()
        known_user_id = user_id

        async def write(dbs: AsyncSession) -> bool:
            return await notice(
                dbs,
                settings,
                user_id=known_user_id,
                username=username,
                kind="new-device",
                subject="A sign-in from a new device",
                what="Your account was signed in to from a browser that had not signed in"
                " to it before (or had forgotten it).",
                where=where,
                template="new_device",
            )

        _after_response(write)

    return receive


def connect(app_receivers: list[Any], settings: MailSettings, sender: object) -> None:
    """Subscribe this app's receivers to the signals (kept alive in ``app_receivers``:
    blinker holds receivers weakly). Only the app ``sender``'s signals are received,
    so an app built in the same process (tests) never writes another's notices."""
    for signal, setting, kind, subject, what in SIGNALLED:
        receive = _receiver(settings, setting, kind, subject, what)
        app_receivers.append(receive)
        signal.connect(receive, sender=sender)
    receive = _new_device_receiver(settings)
    app_receivers.append(receive)
    signals.user_logged_in.connect(receive, sender=sender)
