"""The sign-up feature's rows of the settings table and its typed section.

Registration is off unless ``REGISTRATION_OPEN`` is true, and needs mail on: an
account is confirmed from a link sent to its address. Every limit is a row here, and
each is counted with auth's throttle (``throttle_counters``), so the limits hold
across processes and the counters go when their windows end.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..settings import Part, Section, Setting, section
from ..settings.kinds import flag, integer

if TYPE_CHECKING:
    from quart import Quart

POSITIVE = integer(1)

ROWS: tuple[Setting, ...] = (
    Setting(
        "REGISTRATION_OPEN",
        flag(),
        False,
        "anyone may make an account at `/register` (needs mail on: the account is"
        " confirmed from a link sent to its address); off: `/register` is a 404",
    ),
    Setting(
        "REGISTRATIONS_PER_NETWORK_PER_HOUR",
        POSITIVE,
        5,
        "sign-up attempts per client address (IPv6: each /64, /56 and /48) per hour, a"
        " taken username included",
    ),
    Setting(
        "REGISTRATIONS_PER_NETWORK_PER_DAY",
        POSITIVE,
        20,
        "sign-up attempts per client address (IPv6: each /64, /56 and /48) per day",
    ),
    Setting(
        "REGISTRATIONS_PER_HOUR",
        POSITIVE,
        200,
        "sign-up attempts per hour from everywhere: the bound on new accounts under a"
        " flood from many addresses",
    ),
    Setting(
        "REGISTRATION_EMAILS_PER_ADDRESS_PER_DAY",
        POSITIVE,
        3,
        "sign-up emails (a confirmation link, or the note to a taken address's owner) per"
        " destination address per day",
    ),
    Setting(
        "CONFIRMATION_RESEND_INTERVAL",
        POSITIVE,
        180,
        "seconds between two confirmation emails sent again for one account",
    ),
    Setting(
        "CONFIRMATION_RESENDS_PER_DAY",
        POSITIVE,
        5,
        "confirmation emails sent again per account per day",
    ),
    Setting(
        "CONFIRMATION_RESENDS_PER_NETWORK_PER_DAY",
        POSITIVE,
        20,
        "confirmation emails sent again per client address (IPv6: network) per day",
    ),
    Setting(
        "UNCONFIRMED_ACCOUNT_DAYS",
        POSITIVE,
        7,
        "days an account made at `/register` waits for its address to be confirmed;"
        " then the prune deletes it, with its mail",
    ),
)


@dataclass(frozen=True, slots=True)
class SignupSettings(Section):
    """The sign-up feature's settings, typed."""

    registration_open: bool
    registrations_per_network_per_hour: int
    registrations_per_network_per_day: int
    registrations_per_hour: int
    registration_emails_per_address_per_day: int
    confirmation_resend_interval: int
    confirmation_resends_per_day: int
    confirmation_resends_per_network_per_day: int
    unconfirmed_account_days: int


PART = Part("Sign-up", ROWS, SignupSettings)


def of(app: Quart) -> SignupSettings:
    """``app``'s sign-up settings, outside a request."""
    return section(app, SignupSettings)


def current() -> SignupSettings:
    """The serving app's sign-up settings."""
    from quart import current_app

    return section(current_app, SignupSettings)
