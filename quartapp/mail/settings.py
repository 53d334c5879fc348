"""The mail feature's rows of the settings table, their checks, and its typed section.

:class:`MailSettings` holds each row as it is set, and what the feature uses made from
them: the ``transport`` (None: mail is off), the ``sender`` and the ``base_url``. The
part's check refuses what cannot work, in one ConfigError line when the app starts: a
``MAIL_URL`` that cannot be parsed or would send a password over plain SMTP to another
machine, or production with mail on and no ``BASE_URL`` (links are never built from a
request's Host).

Defaults. Development: ``file:<instance>/mail``, links to ``http://127.0.0.1:8000``.
Production without ``MAIL_URL``: mail is off; :func:`quartapp.mail.init_app` logs one
warning naming the setting, and no page offers a reset. ``MAIL_URL=none`` turns it off
on purpose, without the warning.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from email.headerregistry import Address
from email.utils import parseaddr
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self
from urllib.parse import urlsplit

from ..settings import ConfigError, Part, Section, Setting, section
from ..settings.kinds import flag, integer, text
from .transport import Transport, parse_url

if TYPE_CHECKING:
    from quart import Quart

DEVELOPMENT_BASE_URL = "http://127.0.0.1:8000"
OFF = "none"
POSITIVE = integer(1)

# The notifications, each a MAIL_NOTIFY_<NAME> setting, on by default.
NOTIFICATIONS = ("PASSWORD", "EMAIL", "TWO_FACTOR", "RECOVERY_CODES", "PASSKEYS", "NEW_DEVICE")

ROWS: tuple[Setting, ...] = (
    Setting(
        "MAIL_URL",
        text(),
        None,
        "where mail goes: `smtp://user:pass@host:587` (STARTTLS), `smtps://user:pass@host:465`,"
        " `smtp://127.0.0.1:PORT` (plain, loopback only), `file:PATH` (one `.eml` each),"
        " `console:` (the log), or `none`; unset: `file:instance/mail` in development, and"
        " in production no mail at all, with a warning (the email page)",
        secret=True,  # it may hold the SMTP password
    ),
    Setting(
        "MAIL_FROM",
        text(),
        None,
        "the From of every message, like `Example <no-reply@example.com>`; unset:"
        " `no-reply@` the host of `BASE_URL`",
    ),
    Setting(
        "BASE_URL",
        text(),
        None,
        "the site's address for links in mail, like `https://app.example.com`; never taken"
        " from a request; required in production when mail is on; unset in development:"
        " `http://127.0.0.1:8000`",
    ),
    Setting("MAIL_TIMEOUT", POSITIVE, 15, "seconds to connect to and talk with the mail server"),
    Setting(
        "MAIL_MAX_ATTEMPTS",
        POSITIVE,
        8,
        "tries per message, waiting longer each time (from 30 s, doubling); then it is marked"
        " failed",
    ),
    Setting(
        "MAIL_SENDER_IN_WEB",
        flag(),
        True,
        "each web process sends the outbox; `false` when a Procfile `worker:` line runs"
        " `quart --app quartapp mail worker` instead",
    ),
    Setting(
        "MAIL_UNKNOWN_ADDRESS_NOTICE",
        flag(),
        False,
        "a reset request for an address no account uses sends a note saying so",
    ),
    Setting(
        "RESET_REQUESTS_PER_EMAIL",
        POSITIVE,
        3,
        "password-reset emails per address per hour; past it the same page, and no email",
    ),
    Setting(
        "RESET_REQUESTS_PER_NETWORK",
        POSITIVE,
        20,
        "password-reset requests per client address (IPv6: network) per hour",
    ),
    *(
        Setting(
            f"MAIL_NOTIFY_{name}", flag(), True, f"email the account's confirmed address {what}"
        )
        for name, what in (
            ("PASSWORD", "when its password is changed or reset"),
            ("EMAIL", "(the old one) when its address is changed"),
            ("TWO_FACTOR", "when two-factor sign-in is turned on or off"),
            ("RECOVERY_CODES", "when a recovery code is used or new ones are made"),
            ("PASSKEYS", "when a passkey is added or removed"),
            ("NEW_DEVICE", "when it signs in from a device not seen before"),
        )
    ),
)


@dataclass(frozen=True, slots=True)
class MailSettings(Section):
    """The mail feature's settings, typed; ``transport`` is None when mail is off."""

    mail_url: str | None
    mail_from: str | None
    base_url: str  # checked, without a trailing slash; the development default if unset
    mail_timeout: int
    mail_max_attempts: int
    mail_sender_in_web: bool
    mail_unknown_address_notice: bool
    reset_requests_per_email: int
    reset_requests_per_network: int
    mail_notify_password: bool
    mail_notify_email: bool
    mail_notify_two_factor: bool
    mail_notify_recovery_codes: bool
    mail_notify_passkeys: bool
    mail_notify_new_device: bool
    # Made from the rows above.
    transport: Transport | None
    # Off because production has no MAIL_URL (as opposed to MAIL_URL=none): warn once.
    unconfigured: bool
    sender: str  # MAIL_FROM, or no-reply@ the host of BASE_URL

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Self:
        """The rows, and the transport, base URL and sender made from them."""
        transport, unconfigured = _transport(config)
        base_url = _base_url(config, transport)
        sender = config["MAIL_FROM"] or f"no-reply@{urlsplit(base_url).hostname}"
        return cls.build(
            config,
            base_url=base_url,
            transport=transport,
            unconfigured=unconfigured,
            sender=sender,
        )

    @property
    def on(self) -> bool:
        """Whether any mail is sent: the reset and address pages exist only then."""
        return self.transport is not None

    def notifies(self, name: str) -> bool:
        """Whether the MAIL_NOTIFY_<name> notification is on (and mail with it)."""
        return self.on and bool(getattr(self, f"mail_notify_{name.lower()}"))


def check(config: Mapping[str, Any]) -> None:
    """Refuse mail settings that cannot work (ConfigError, one line)."""
    transport, _ = _transport(config)
    base_url = _base_url(config, transport)
    if config["MAIL_FROM"] is not None:
        check_sender(config["MAIL_FROM"])
    else:
        check_sender(f"no-reply@{urlsplit(base_url).hostname}")


def _transport(config: Mapping[str, Any]) -> tuple[Transport | None, bool]:
    """Where mail goes (None: nowhere), and whether that is for want of a setting."""
    production = config["ENV"] == "production"
    raw = config["MAIL_URL"]
    unconfigured = raw is None and production
    if raw is None:
        raw = OFF if production else f"file:{Path(config['INSTANCE_PATH']) / 'mail'}"
    try:
        return (None if raw.strip().lower() == OFF else parse_url(raw)), unconfigured
    except ValueError as error:
        raise ConfigError(f"MAIL_URL {error}") from None


def _base_url(config: Mapping[str, Any], transport: Transport | None) -> str:
    """``BASE_URL`` checked, or the development default where none is needed."""
    production = config["ENV"] == "production"
    value = config["BASE_URL"]
    if value is None:
        if production and transport is not None:
            raise ConfigError(
                "BASE_URL is not set in production, and mail is on; set QUARTAPP_BASE_URL to"
                " the site's address, like https://app.example.com (links in mail are never"
                " built from a request's Host), or QUARTAPP_MAIL_URL=none"
            )
        value = DEVELOPMENT_BASE_URL
    return check_base_url(value, production=production and transport is not None)


def check_base_url(value: str, *, production: bool) -> str:
    """``BASE_URL`` without a trailing slash; refuse what is not an http(s) origin+path."""
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"BASE_URL must be an http or https URL, like https://app.example.com, not {value!r}"
        )
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ConfigError(f"BASE_URL must have no user, query or fragment, not {value!r}")
    if production and parts.scheme != "https":
        raise ConfigError(f"BASE_URL must be https in production, not {value!r}")
    return value.strip().rstrip("/")


def check_sender(value: str) -> None:
    """Refuse a From that is not one address, or that could carry a header."""
    fix = f"MAIL_FROM must be an address, like no-reply@example.com, not {value!r}"
    if "\r" in value or "\n" in value:
        raise ConfigError("MAIL_FROM must be one line")
    name, address = parseaddr(value)
    try:
        Address(display_name=name, addr_spec=address)
    except (ValueError, IndexError):
        raise ConfigError(fix) from None
    if "@" not in address:
        raise ConfigError(fix)


PART = Part("Email", ROWS, MailSettings, check=check)


def of(app: Quart) -> MailSettings:
    """``app``'s mail settings, outside a request."""
    return section(app, MailSettings)


def current() -> MailSettings:
    """The serving app's mail settings."""
    from quart import current_app

    return section(current_app, MailSettings)
