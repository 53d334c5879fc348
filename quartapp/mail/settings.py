"""The mail feature's settings, resolved once into a typed, frozen :class:`MailSettings`.

The rows are in the settings table (``MAIL_URL``, ``MAIL_FROM``, ``BASE_URL``...);
:func:`resolve` turns their raw values into what the feature uses, and refuses what
cannot work with one ConfigError line: a ``MAIL_URL`` it cannot parse or that would
send a password over plain SMTP to another machine, or production with mail on and
no ``BASE_URL`` (links must never be built from a request's Host).

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
from typing import Any
from urllib.parse import urlsplit

from ..settings import ConfigError
from .transport import Transport, parse_url

DEVELOPMENT_BASE_URL = "http://127.0.0.1:8000"
OFF = "none"

# The notifications, each a MAIL_NOTIFY_<NAME> setting, on by default.
NOTIFICATIONS = ("PASSWORD", "EMAIL", "TWO_FACTOR", "RECOVERY_CODES", "PASSKEYS", "NEW_DEVICE")


@dataclass(frozen=True, slots=True)
class MailSettings:
    """What the mail feature reads, typed; ``transport`` is None when mail is off."""

    transport: Transport | None
    # Off because production has no MAIL_URL (as opposed to MAIL_URL=none): warn once.
    unconfigured: bool
    sender: str
    base_url: str
    timeout: int
    max_attempts: int
    sender_in_web: bool
    unknown_address_notice: bool
    reset_requests_per_email: int
    reset_requests_per_network: int
    # The MAIL_NOTIFY_* names that are on, without the prefix ("PASSWORD", ...).
    notify: frozenset[str]

    @property
    def on(self) -> bool:
        """Whether any mail is sent: the reset and address pages exist only then."""
        return self.transport is not None

    def notifies(self, name: str) -> bool:
        """Whether the MAIL_NOTIFY_<name> notification is on (and mail with it)."""
        return self.on and name in self.notify


def resolve(config: Mapping[str, Any]) -> MailSettings:
    """Build the typed settings from the merged, checked config; ConfigError if unusable."""
    production = config["ENV"] == "production"
    raw = config["MAIL_URL"]
    unconfigured = raw is None and production
    if raw is None:
        raw = OFF if production else f"file:{Path(config['INSTANCE_PATH']) / 'mail'}"
    try:
        transport = None if raw.strip().lower() == OFF else parse_url(raw)
    except ValueError as error:
        raise ConfigError(f"MAIL_URL {error}") from None
    base_url = config["BASE_URL"]
    if base_url is None:
        if production and transport is not None:
            raise ConfigError(
                "BASE_URL is not set in production, and mail is on; set QUARTAPP_BASE_URL to"
                " the site's address, like https://app.example.com (links in mail are never"
                " built from a request's Host), or QUARTAPP_MAIL_URL=none"
            )
        base_url = DEVELOPMENT_BASE_URL
    base_url = check_base_url(base_url, production=production and transport is not None)
    sender = config["MAIL_FROM"] or f"no-reply@{urlsplit(base_url).hostname}"
    check_sender(sender)
    return MailSettings(
        transport=transport,
        unconfigured=unconfigured,
        sender=sender,
        base_url=base_url,
        timeout=config["MAIL_TIMEOUT"],
        max_attempts=config["MAIL_MAX_ATTEMPTS"],
        sender_in_web=config["MAIL_SENDER_IN_WEB"],
        unknown_address_notice=config["MAIL_UNKNOWN_ADDRESS_NOTICE"],
        reset_requests_per_email=config["RESET_REQUESTS_PER_EMAIL"],
        reset_requests_per_network=config["RESET_REQUESTS_PER_NETWORK"],
        notify=frozenset(n for n in NOTIFICATIONS if config[f"MAIL_NOTIFY_{n}"]),
    )


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
    if "\r" in value or "\n" in value:
        raise ConfigError("MAIL_FROM must be one line")
    name, address = parseaddr(value)
    try:
        Address(display_name=name, addr_spec=address)
    except (ValueError, IndexError):
        raise ConfigError(
            f"MAIL_FROM must be an address, like no-reply@example.com, not {value!r}"
        ) from None
    if "@" not in address:
        raise ConfigError(
            f"MAIL_FROM must be an address, like no-reply@example.com, not {value!r}"
        )
