"""The operations of sign-up, shared by the pages and the CLI.

- :func:`register`: a new, unconfirmed account and its confirmation link; or, for an
  address that is taken, a note to its owner and the same answer;
- :func:`resend`: the confirmation link again, within its limits;
- :func:`confirm`: spend a link and mark the account (and its address) confirmed;
- :func:`confirm_by_admin`: ``users confirm NAME``;
- :func:`prune`: delete accounts never confirmed, with their mail.

Each takes the database session it works in and commits it; every message is written
to the outbox in the transaction of the change it reports (mail's ``outbox``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ..auth import flows as auth_flows
from ..auth import throttle, users
from ..auth.models import User
from ..auth.passwords import Passwords
from ..auth.settings import AuthSettings
from ..auth.throttle import Counter
from ..mail import addresses, outbox, tokens
from ..mail.addresses import AddressError, Normal
from ..mail.models import EmailAddress, MailToken, OutboxMessage
from ..mail.settings import MailSettings
from .models import Registration
from .settings import SignupSettings

# mail_tokens.purpose of a sign-up link (at most 16 characters).
PURPOSE = "signup"
LIFETIME = 3 * 86400
HOUR, DAY = 3600, 86400
# The throttle's scopes (at most 8 characters).
NETWORK_HOUR = "signhr"  # sign-up attempts per network, per hour
NETWORK_DAY = "signday"  # ... per day
EVERYONE = "signall"  # ... from everywhere, per hour (key "all")
DESTINATION = "signmail"  # sign-up emails per destination address, per day
RESEND_SOON = "resend"  # resends per account, per CONFIRMATION_RESEND_INTERVAL
RESEND_DAY = "resendd"  # ... per day
RESEND_NETWORK = "resendnt"  # resends per network, per day


# Where a confirmation link opens (views.confirm).
CONFIRM_PATH = "/confirm_email"


def network_counters(
    config: AuthSettings, client: str | None, scope: str, limit: int
) -> list[Counter]:
    """One counter per network the client is in: its address (IPv6: /64), then for IPv6
    the /56 and /48 too, each at the same limit, so rotating /64s gains nothing."""
    key = throttle.address_key(client, config)
    return [
        *(Counter(scope, wide, limit) for _, wide in throttle.networks(key)),
        Counter(scope, key, limit),
    ]


class Outcome(Enum):
    """What :func:`register` did. SENT and TAKEN_ADDRESS look the same to the client."""

    SENT = "sent"
    TAKEN_ADDRESS = "taken-address"
    TAKEN_NAME = "taken-name"
    LIMITED = "limited"


@dataclass(frozen=True)
class Registered:
    """:func:`register`'s outcome, and for LIMITED the seconds until a retry may work."""

    outcome: Outcome
    retry_after: int = 0
    user_id: int | None = None


async def register(
    dbs: AsyncSession,
    signup: SignupSettings,
    mail: MailSettings,
    config: AuthSettings,
    hasher: Passwords,
    *,
    name: str,
    normal: Normal,
    password: str,
    client: str | None,
) -> Registered:
    """Make an unconfirmed account and write its confirmation link (commits).

    In order: the username's form and the password policy (AccountError: the form's
    own errors, nothing counted); one more attempt counted against the client's
    networks (per hour and per day) and everyone's (per hour); whether the username is
    taken (said, since a person must pick another, but only now, and counted, so names
    cannot be listed quickly); one more email counted against the destination address
    (per day). Past any limit: LIMITED, and nothing else happens.

    Then the password is hashed either way, and either the account is made through
    auth's one ``create_account`` with its registration, its unconfirmed address, a
    link and the mail (SENT), or, if an account holds the address, the address gets a
    note that someone tried to register with it and nothing is made (TAKEN_ADDRESS).
    The client is told the same for both, after the same work: the hash dominates.
    """
    username = users.check_username(name, config)
    await users.vet_password(password, config, username=username)
    wanted = [
        *network_counters(config, client, NETWORK_HOUR, signup.registrations_per_network_per_hour),
        Counter(EVERYONE, "all", signup.registrations_per_hour),
    ]
    lockout = await throttle.count(dbs, config, wanted, window=HOUR)
    if lockout is None:
        daily = network_counters(
            config, client, NETWORK_DAY, signup.registrations_per_network_per_day
        )
        lockout = await throttle.count(dbs, config, daily, window=DAY)
    if lockout is None and await users.find_user(dbs, username) is not None:
        await dbs.commit()
        return Registered(Outcome.TAKEN_NAME)
    if lockout is None:
        per_address = [
            Counter(DESTINATION, normal.key, signup.registration_emails_per_address_per_day)
        ]
        lockout = await throttle.count(dbs, config, per_address, window=DAY)
    await dbs.commit()
    if lockout is not None:
        return Registered(Outcome.LIMITED, lockout.retry_after)
    holder = await dbs.scalar(
        select(EmailAddress.user_id).where(EmailAddress.address_key == normal.key)
    )
    if holder is not None:
        # The work create_account does for a new one: the name's lookup, the policy's
        # rating (milliseconds of CPU) and the hash (most of the time).
        await users.available_username(dbs, config, username)
        await users.vet_password(password, config, username=username)
        await dbs.rollback()
        await hasher.hash(password)
        await _tell_owner(dbs, mail, normal, holder)
        await dbs.commit()
        return Registered(Outcome.TAKEN_ADDRESS)

    async def then(session: AsyncSession, user: User) -> None:
        session.add(Registration(user_id=user.id, created_at=time.time()))
        await session.flush()
        await addresses.store(session, user.id, normal, confirmed=False)
        await _write_link(session, mail, user.id, user.username, normal.address)

    try:
        user = await auth_flows.create_account(
            dbs, config, hasher, name=username, password=password, then=then
        )
    except AddressError:
        # Another request took the address between the look and the insert (nothing
        # of this account was kept): the same answer as for a taken address.
        return Registered(Outcome.TAKEN_ADDRESS)
    except users.AccountError:
        return Registered(Outcome.TAKEN_NAME)  # the name was taken meanwhile
    return Registered(Outcome.SENT, user_id=user.id)


async def _write_link(
    dbs: AsyncSession, mail: MailSettings, user_id: int, username: str, address: str
) -> None:
    """A new confirmation link (ending older ones) and its message (no commit)."""
    token = await tokens.issue(
        dbs, user_id=user_id, purpose=PURPOSE, address=address, lifetime=LIFETIME
    )
    await outbox.enqueue(
        dbs,
        mail,
        kind="signup-confirm",
        to=address,
        subject="Confirm your email address",
        template="signup_confirm",
        user_id=user_id,
        username=username,
        link=tokens.link(mail, CONFIRM_PATH, token),
        days=LIFETIME // DAY,
    )


async def _tell_owner(dbs: AsyncSession, mail: MailSettings, normal: Normal, holder: int) -> None:
    """The note to a taken address: someone tried to register with it (no commit)."""
    row = await dbs.get(EmailAddress, holder)
    await outbox.enqueue(
        dbs,
        mail,
        kind="signup-taken",
        to=row.address if row is not None else normal.address,
        subject="Someone tried to register with your address",
        template="signup_taken",
        user_id=holder,
        login_url=f"{mail.base_url}/login",
        reset_url=f"{mail.base_url}/reset_password_request",
    )


async def unconfirmed(dbs: AsyncSession, user_id: int) -> bool:
    """Whether the user signed up and has not confirmed their address yet."""
    found = await dbs.scalar(
        select(Registration.user_id).where(
            Registration.user_id == user_id, Registration.confirmed_at.is_(None)
        )
    )
    return found is not None


class Resent(Enum):
    """What :func:`resend` did."""

    SENT = "sent"
    LIMITED = "limited"
    CONFIRMED = "confirmed"


async def resend(
    dbs: AsyncSession,
    signup: SignupSettings,
    mail: MailSettings,
    config: AuthSettings,
    *,
    user_id: int,
    username: str,
    client: str | None,
) -> tuple[Resent, int]:
    """Send the confirmation link again, if within the limits (commits).

    Counted per account (one per ``CONFIRMATION_RESEND_INTERVAL``, and per day) and per
    client network (per day); past a limit nothing is sent and the seconds to wait
    come back with LIMITED.
    """
    if not await unconfirmed(dbs, user_id):
        return Resent.CONFIRMED, 0
    key = str(user_id)
    checks: list[tuple[list[Counter], int]] = [
        (
            network_counters(
                config, client, RESEND_NETWORK, signup.confirmation_resends_per_network_per_day
            ),
            DAY,
        ),
        ([Counter(RESEND_SOON, key, 1)], signup.confirmation_resend_interval),
        ([Counter(RESEND_DAY, key, signup.confirmation_resends_per_day)], DAY),
    ]
    for wanted, window in checks:
        lockout = await throttle.count(dbs, config, wanted, window=window)
        if lockout is not None:
            await dbs.commit()
            return Resent.LIMITED, lockout.retry_after
    row = await dbs.get(EmailAddress, user_id)
    if row is None:
        await dbs.commit()
        return Resent.CONFIRMED, 0  # nothing to confirm: an admin removed it
    await _write_link(dbs, mail, user_id, username, row.address)
    await dbs.commit()
    return Resent.SENT, 0


async def confirm(dbs: AsyncSession, *, token: str) -> int:
    """Spend a sign-up link; mark the account and its address confirmed (commits).

    The token is spent by one conditional UPDATE, so of two requests with one link
    exactly one confirms; the other gets :class:`~quartapp.mail.tokens.LinkRefused`, as
    does a dead link, or one whose address another account confirmed meanwhile (then
    nothing changes).
    Returns the user's id. Nobody is signed in.
    """
    spent = await tokens.spend(dbs, token, PURPOSE)
    if spent is None:
        await dbs.rollback()
        raise tokens.LinkRefused
    try:
        await _mark_confirmed(dbs, spent.user_id, addresses.normalise(spent.address))
    except AddressError:
        raise tokens.LinkRefused from None  # store() rolled the spend back
    await dbs.commit()
    return spent.user_id


async def _mark_confirmed(dbs: AsyncSession, user_id: int, normal: Normal) -> None:
    now = time.time()
    await dbs.execute(
        update(Registration)
        .where(Registration.user_id == user_id, Registration.confirmed_at.is_(None))
        .values(confirmed_at=now)
    )
    await addresses.store(dbs, user_id, normal, confirmed=True)
    await tokens.end(dbs, user_id, PURPOSE)


async def confirm_by_admin(dbs: AsyncSession, name: str) -> str:
    """``users confirm NAME``: confirm the account and its address by hand (commits)."""
    user = await users.get_user(dbs, name)
    row = await dbs.get(EmailAddress, user.id)
    registration = await dbs.get(Registration, user.id)
    if registration is None or registration.confirmed_at is not None:
        raise users.AccountError(f"{user.username!r} has nothing to confirm")
    if row is None:
        await dbs.execute(
            update(Registration)
            .where(Registration.user_id == user.id)
            .values(confirmed_at=time.time())
        )
    else:
        await _mark_confirmed(dbs, user.id, addresses.normalise(row.address))
    await dbs.commit()
    return f"confirmed {user.username!r}"


async def unconfirmed_among(dbs: AsyncSession, user_ids: Sequence[int]) -> set[int]:
    """For ``users list --unconfirmed``: those of the ids whose sign-up is unconfirmed."""
    rows = await dbs.scalars(
        select(Registration.user_id).where(
            Registration.user_id.in_(list(user_ids)), Registration.confirmed_at.is_(None)
        )
    )
    return set(rows)


async def prune(dbs: AsyncSession, signup: SignupSettings, batch: int) -> int:
    """Delete up to ``batch`` accounts never confirmed in ``UNCONFIRMED_ACCOUNT_DAYS``,
    with their outbox rows (commits); how many.

    The outbox has no foreign key (a message about a deleted account is normally still
    sent), so its rows are deleted by ``user_id`` first; the rest (registration,
    address, links, logins) go with the user by ON DELETE CASCADE, and explicitly too.
    """
    cutoff = time.time() - signup.unconfirmed_account_days * DAY
    stale = list(
        await dbs.scalars(
            select(Registration.user_id)
            .where(Registration.confirmed_at.is_(None), Registration.created_at < cutoff)
            .limit(batch)
        )
    )
    if not stale:
        return 0
    await dbs.execute(delete(OutboxMessage).where(OutboxMessage.user_id.in_(stale)))
    await dbs.execute(delete(MailToken).where(MailToken.user_id.in_(stale)))
    await dbs.execute(delete(EmailAddress).where(EmailAddress.user_id.in_(stale)))
    await dbs.execute(delete(Registration).where(Registration.user_id.in_(stale)))
    await dbs.execute(delete(User).where(User.id.in_(stale)))
    await dbs.commit()
    return len(stale)
