"""auth's rows of the settings table, their checks together, and their typed section.

Passwords and their hashing, the throttle, trusted devices, logins and their limits,
re-authentication and the first run's ``admin``. The loader merges :data:`PART` with the
base's table (``quartapp.setting_parts``); the app reads the values as
:class:`AuthSettings`, through :func:`current` in a request or :func:`of` outside one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Self

from ..db.models import USERNAME_COLUMN
from ..settings import ConfigError, Part, Section, Setting, Settings, section
from ..settings.kinds import flag, integer
from . import hashing

if TYPE_CHECKING:
    from quart import Quart

# OWASP's minimum for argon2id (Password Storage Cheat Sheet): nothing below is accepted.
ARGON2_MINIMUM = {"ARGON2_MEMORY_COST": 19456, "ARGON2_TIME_COST": 2, "ARGON2_PARALLELISM": 1}

# The IPv6 networks counted on top of THROTTLE_IPV6_PREFIX, and the most each may be
# allowed, in multiples of LOGIN_FAILURES_PER_ADDRESS (also their defaults).
IPV6_AGGREGATES = {"LOGIN_FAILURES_PER_IPV6_56": 4, "LOGIN_FAILURES_PER_IPV6_48": 16}

POSITIVE = integer(1)

# USERNAME_MAX_LENGTH's default, also what the audit log uses outside an app.
USERNAME_MAX_LENGTH = 64

ROWS: tuple[Setting, ...] = (
    Setting("PASSWORD_MIN_LENGTH", POSITIVE, 15, "shortest new password, in characters"),
    Setting(
        "PASSWORD_MAX_LENGTH", POSITIVE, 1024, "longest password; none is stripped or truncated"
    ),
    # zxcvbn's score a new password needs; 3 is "safely unguessable" against an online
    # attack and needs about 10^8 guesses offline. 0 turns the check off.
    Setting(
        "PASSWORD_MIN_SCORE",
        integer(0, 4),
        3,
        "zxcvbn score (0-4) a new password needs; 0: no check",
    ),
    Setting(
        "USERNAME_MAX_LENGTH",
        integer(1, USERNAME_COLUMN),
        USERNAME_MAX_LENGTH,
        "longest user name (at most 255, the column's size)",
    ),
    *(
        Setting(
            name,
            integer(minimum, note="OWASP minimum"),
            default,
            f"argon2id's {what} (the security page, Passwords)",
        )
        for (name, minimum), default, what in zip(
            ARGON2_MINIMUM.items(),
            (32768, 3, 1),
            ("memory in KiB", "passes", "lanes"),
            strict=True,
        )
    ),
    # Unset: the cores the process may use, at most 4 (hashing.default_concurrency).
    Setting(
        "HASHING_CONCURRENCY",
        integer(1, optional=True),
        None,
        "hashes computed at once per process; unset: the cores this process may use"
        " (affinity, cgroup quota), at most 4",
    ),
    # Above the event loop's 0, so that pages keep being served while hashes run (hashing.py).
    Setting(
        "HASHING_NICE",
        integer(0, 19),
        hashing.HASHING_NICE,
        "the hashing threads' nice value (Linux): above the event loop's, so pages keep"
        " being served during a burst of logins; 0: the loop's priority",
    ),
    # Logins that may wait for a hashing slot per process; past that, 503 at once.
    Setting(
        "HASHING_QUEUE",
        POSITIVE,
        8,
        "logins that may wait for a hashing slot per process; past that, 503",
    ),
    # Of those HASHING_CONCURRENCY + HASHING_QUEUE places, how many one client (an
    # address network, a username, a user's trusted devices) may hold at once; as many
    # more are kept for trusted devices. One browser needs one place at a time.
    Setting(
        "HASHING_PLACES_PER_CLIENT",
        POSITIVE,
        2,
        "of those places, how many one client (address or IPv6 /48, name) may hold; as many"
        " more are kept for trusted devices",
    ),
    Setting("INITIAL_ADMIN", flag(), True, "create `admin` on an empty development database"),
    Setting(
        "LOGIN_FAILURES_PER_USER", POSITIVE, 5, "failed logins allowed per username per window"
    ),
    Setting(
        "LOGIN_FAILURES_PER_ADDRESS",
        POSITIVE,
        50,
        "failed logins allowed per address (IPv6: per network) per window",
    ),
    # A browser with a device cookie for the username has its own limit (see throttle.py).
    Setting(
        "LOGIN_FAILURES_PER_DEVICE", POSITIVE, 5, "failed logins per window of a trusted device"
    ),
    Setting("DEVICE_COOKIE_DAYS", POSITIVE, 365, "days a device stays trusted without a login"),
    # A login past DEVICES_MINTED_PER_WINDOW gets no device cookie; past
    # DEVICES_PER_USER the least recently used record goes.
    Setting(
        "DEVICES_MINTED_PER_WINDOW", POSITIVE, 5, "new trusted devices one user may get per window"
    ),
    Setting(
        "DEVICES_PER_USER",
        POSITIVE,
        10,
        "trusted devices kept per user; the least recently used go",
    ),
    # IPv6 clients are counted by network: a host is usually handed a whole /64.
    Setting(
        "THROTTLE_IPV6_PREFIX", integer(1, 128), 64, "the IPv6 network counted as one address"
    ),
    # On top of the per-/64 count, so a site handed a /56 or /48 cannot rotate /64s past
    # the limit. None: 4x and 16x the address limit, which are also the most they may be
    # (IPV6_AGGREGATES).
    *(
        Setting(
            f"LOGIN_FAILURES_PER_IPV6_{prefix}",
            integer(1, optional=True),
            None,
            f"failed logins allowed per IPv6 /{prefix} per window; unset: {times}"
            " `LOGIN_FAILURES_PER_ADDRESS`, which is also the most it may be",
        )
        for prefix, times in (("56", "4 times"), ("48", "16 times"))
    ),
    Setting(
        "LOGIN_FAILURE_WINDOW", POSITIVE, 15 * 60, "seconds failed logins are counted (the window)"
    ),
    # A new login past it ends the oldest (logins.py).
    Setting(
        "LOGINS_PER_USER_MAX",
        POSITIVE,
        50,
        "live logins one user may hold; a new one ends the oldest",
    ),
    Setting("SESSION_IDLE_MINUTES", POSITIVE, 30, 'idle limit of a login without "remember me"'),
    Setting("SESSION_MAX_HOURS", POSITIVE, 12, 'absolute limit of a login without "remember me"'),
    # Adding or removing a sign-in factor needs a login this fresh (auth.reauth).
    Setting(
        "REAUTH_MINUTES",
        POSITIVE,
        10,
        "a login made or confirmed this recently may add or remove a sign-in factor; an"
        " older one is asked to confirm at `/login/confirm` first",
    ),
)


def check(config: Mapping[str, Any]) -> None:
    """Refuse auth's settings that are each fine but do not fit together."""
    if config["PASSWORD_MIN_LENGTH"] > config["PASSWORD_MAX_LENGTH"]:
        raise ConfigError(
            f"PASSWORD_MIN_LENGTH ({config['PASSWORD_MIN_LENGTH']}) is larger than "
            f"PASSWORD_MAX_LENGTH ({config['PASSWORD_MAX_LENGTH']})"
        )
    places = hashing_concurrency(config) + config["HASHING_QUEUE"]
    if config["HASHING_PLACES_PER_CLIENT"] > places:
        raise ConfigError(
            f"HASHING_PLACES_PER_CLIENT may be at most HASHING_CONCURRENCY + HASHING_QUEUE "
            f"({places}), not {config['HASHING_PLACES_PER_CLIENT']}"
        )
    for name, times in IPV6_AGGREGATES.items():
        value = config[name]
        most = times * config["LOGIN_FAILURES_PER_ADDRESS"]
        if value is not None and value > most:
            raise ConfigError(
                f"{name} must be a positive integer of at most {times} x "
                f"LOGIN_FAILURES_PER_ADDRESS ({most}), not {value}"
            )


def hashing_concurrency(config: Mapping[str, Any]) -> int:
    """``HASHING_CONCURRENCY``, or when unset the cores this process may use (at most 4)."""
    value = config["HASHING_CONCURRENCY"]
    return hashing.default_concurrency() if value is None else int(value)


def derive(config: dict[str, Any]) -> None:
    """Unset IPv6 aggregates count their multiple of the per-address limit; an unset
    ``HASHING_CONCURRENCY`` is sized from the cores."""
    config["HASHING_CONCURRENCY"] = hashing_concurrency(config)
    for name, times in IPV6_AGGREGATES.items():
        if config[name] is None:
            config[name] = times * config["LOGIN_FAILURES_PER_ADDRESS"]


@dataclass(frozen=True, slots=True)
class AuthSettings(Section):
    """auth's settings, typed; ``site`` is the base's, which auth's cookies and logins
    also depend on (the keys, the cookie's Secure flag, ``REMEMBER_ME_DAYS``)."""

    site: Settings
    password_min_length: int
    password_max_length: int
    password_min_score: int
    username_max_length: int
    argon2_memory_cost: int
    argon2_time_cost: int
    argon2_parallelism: int
    hashing_concurrency: int
    hashing_nice: int
    hashing_queue: int
    hashing_places_per_client: int
    initial_admin: bool
    login_failures_per_user: int
    login_failures_per_address: int
    login_failures_per_device: int
    device_cookie_days: int
    devices_minted_per_window: int
    devices_per_user: int
    throttle_ipv6_prefix: int
    login_failures_per_ipv6_56: int  # derived when unset
    login_failures_per_ipv6_48: int
    login_failure_window: int
    logins_per_user_max: int
    session_idle_minutes: int
    session_max_hours: int
    reauth_minutes: int

    def network_limit(self, prefix: int) -> int:
        """Failed logins allowed per IPv6 /``prefix``, an aggregate network (48 or 56)."""
        return self.login_failures_per_ipv6_48 if prefix == 48 else self.login_failures_per_ipv6_56

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Self:
        """auth's values in checked settings, with the base's as ``site``."""
        return cls.build(config, site=Settings.from_config(config))


PART = Part("Sign-in and accounts", ROWS, AuthSettings, check=check, derive=derive)


def of(app: Quart) -> AuthSettings:
    """``app``'s auth settings, outside a request (CLI, bootstrap, ``init_app``)."""
    return section(app, AuthSettings)


def current() -> AuthSettings:
    """The serving app's auth settings."""
    from quart import current_app

    return section(current_app, AuthSettings)
