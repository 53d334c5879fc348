"""passkeys' rows of the settings table, the check of the RP ID, and their typed section."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..settings import (
    DEVELOPMENT_HOSTS,
    ConfigError,
    Part,
    Section,
    Setting,
    is_ip_address,
    section,
)
from ..settings.kinds import host_name, integer

if TYPE_CHECKING:
    from quart import Quart

ROWS: tuple[Setting, ...] = (
    # None: the host of the request, which TRUSTED_HOSTS has already vetted.
    Setting(
        "WEBAUTHN_RP_ID",
        host_name("a lower-case host name, like example.com"),
        None,
        "the passkeys' relying party id, such as `example.com`; passkeys made under one id"
        " work only under it; each name in `TRUSTED_HOSTS` must be it or end with `.` and it,"
        " or the app refuses to start (IP addresses are skipped); unset: the request's host",
    ),
    # Registering one more is refused past it.
    Setting(
        "PASSKEYS_PER_USER_MAX",
        integer(1, 100),
        20,
        "passkeys one account may register (at most 100)",
    ),
)


def check_rp_id(config: Mapping[str, Any]) -> None:
    """A configured ``WEBAUTHN_RP_ID`` must be each trusted host's name or a parent of it.

    Browsers refuse a passkey ceremony on a host outside its RP ID, so a host the ID
    does not cover could serve the site but never sign in with a passkey. An IP
    address is skipped: it can never be an RP ID, and passkeys need a name there.
    """
    rp_id = config["WEBAUTHN_RP_ID"]
    if rp_id is None:
        return
    for entry in config["TRUSTED_HOSTS"] or DEVELOPMENT_HOSTS:
        name = entry.lower().strip("[]").lstrip(".")
        if is_ip_address(name):
            continue
        if name != rp_id and not name.endswith(f".{rp_id}"):
            raise ConfigError(
                f"WEBAUTHN_RP_ID {rp_id!r} does not cover the trusted host {entry!r}; set it "
                "to a name that each trusted host is, or ends with (like example.com)"
            )


@dataclass(frozen=True, slots=True)
class PasskeySettings(Section):
    """passkeys' settings, typed."""

    webauthn_rp_id: str | None
    passkeys_per_user_max: int


PART = Part("Passkeys", ROWS, PasskeySettings, check=check_rp_id)


def of(app: Quart) -> PasskeySettings:
    """``app``'s passkey settings, outside a request."""
    return section(app, PasskeySettings)


def current() -> PasskeySettings:
    """The serving app's passkey settings."""
    from quart import current_app

    return section(current_app, PasskeySettings)
