"""Checks of the merged settings: each value against the table, then across settings.

Also production's refusals, and the settings derived from others in the form Quart
and SQLAlchemy expect. Every refusal is a :class:`ConfigError` of one line that says
the fix, shows the value received (never a secret's) and, for a value of the wrong
type, where it came from.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

from .. import keys
from .kinds import ConfigError, database_url, secret_shown, shown
from .schema import Setting

# Values that have been published as examples; a production key must not be one of them.
PLACEHOLDER_KEYS = frozenset(
    {
        "my precious",
        "dev",
        "development",
        "secret",
        "changeme",
        "change-me",
        "replace-me-with-the-output-of-python-m-quartapp-keys-print",
    }
)

# Served in development when TRUSTED_HOSTS is not set: this machine's names only.
DEVELOPMENT_HOSTS = ("localhost", "127.0.0.1", "::1")


def check_each(
    config: Mapping[str, Any], origins: Mapping[str, str], known: Mapping[str, Setting]
) -> None:
    """Refuse a value its row in the table (``known``) does not accept."""
    for name, value in config.items():
        row = known.get(name)
        if row is None or row.kind.accepts(value):
            continue
        got = secret_shown(value) if row.secret else shown(value)
        source = f" (from {origins[name]})" if name in origins else ""
        hint = f"; {row.kind.hint}" if row.kind.hint else ""
        raise ConfigError(f"{name} must be {row.kind.described}, not {got}{source}{hint}")


def settle_mode(config: dict[str, Any]) -> None:
    """Default to development, but refuse to guess for a site that names public hosts.

    A deploy that forgot QUARTAPP_ENV would otherwise run in development: generated
    per-instance keys, a logged admin password and cookies without Secure. Naming hosts
    beyond this machine is the sign of a deploy, so then the mode must be stated.
    """
    if config["ENV"] is not None:
        return
    hosts = config["TRUSTED_HOSTS"] or []
    if any(host.lower().strip("[]") not in DEVELOPMENT_HOSTS for host in hosts):
        raise ConfigError(
            "TRUSTED_HOSTS names public hosts but QUARTAPP_ENV is not set; set "
            "QUARTAPP_ENV=production (or development for a trial)"
        )
    config["ENV"] = "development"


def check_across(config: Mapping[str, Any]) -> None:
    """Refuse settings that are each fine but do not fit together."""
    check_cookie_name(config)
    if config["ENV"] == "production":
        check_production(config)


def is_ip_address(name: str) -> bool:
    """Whether ``name`` is an IPv4 or IPv6 address rather than a host name."""
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def check_cookie_name(config: Mapping[str, Any]) -> None:
    """A configured session cookie name must be a cookie name its browser will keep.

    Browsers drop a ``__Host-`` cookie without Secure, with a Domain or with a Path
    other than ``/``, and a ``__Secure-`` one without Secure: the site would then run
    with no session at all, so such a setting is refused here instead.
    """
    name = config["SESSION_COOKIE_NAME"]
    if name is None:
        return
    secure = config["SESSION_COOKIE_SECURE"]
    if secure is None:
        secure = config["ENV"] == "production"
    lowered = name.lower()
    prefix = next((p for p in ("__Host-", "__Secure-") if lowered.startswith(p.lower())), None)
    if prefix and not secure:
        raise ConfigError(
            f"SESSION_COOKIE_NAME {name!r} needs a Secure cookie, which browsers drop over "
            f"HTTP; set SESSION_COOKIE_SECURE=true (HTTPS only) or pick a name without {prefix}"
        )
    if prefix == "__Host-" and not host_only_root_cookie(config):
        raise ConfigError(
            f"SESSION_COOKIE_NAME {name!r} needs Path=/ and no Domain; unset "
            "SESSION_COOKIE_DOMAIN and SESSION_COOKIE_PATH, or pick a name without __Host-"
        )


def host_only_root_cookie(config: Mapping[str, Any]) -> bool:
    """Whether the session cookie is set with no Domain and Path=/ (as Quart builds it)."""
    path = config.get("SESSION_COOKIE_PATH") or config.get("APPLICATION_ROOT") or "/"
    return not config.get("SESSION_COOKIE_DOMAIN") and path == "/"


def check_production(config: Mapping[str, Any]) -> None:
    """What production needs on top: a real key, named hosts, a database, no debugging."""
    fix = "run `python -m quartapp.keys --print` and set SECRET_KEY to its value"
    key = config["SECRET_KEY"]
    if not key:
        raise ConfigError(f"SECRET_KEY is missing in production; {fix}")
    if len(key.encode()) < keys.MIN_ENTROPY_BYTES:
        raise ConfigError(f"SECRET_KEY is shorter than 32 bytes; {fix}")
    if key.strip().lower() in PLACEHOLDER_KEYS:
        raise ConfigError(f"SECRET_KEY is a published placeholder; {fix}")
    if not config["TRUSTED_HOSTS"]:
        raise ConfigError(
            "TRUSTED_HOSTS is not set in production; set QUARTAPP_TRUSTED_HOSTS to the "
            "site's host names, like '[\"app.example.com\"]'"
        )
    for flag in ("DEBUG", "TESTING"):
        if config[flag]:
            raise ConfigError(f"{flag} is on in production; unset QUARTAPP_{flag}")
    if not config["DATABASE_URL"]:
        # A SQLite file on a dyno's disk would hold accounts, logins and throttling per
        # dyno, and lose them at the next restart.
        raise ConfigError(
            "DATABASE_URL is not set in production; set it to the database's URL "
            "(postgresql://...), or to sqlite:////path/to/quartapp.db for one machine"
        )


def derive(config: dict[str, Any], instance_path: Path) -> None:
    """Fill settings computed from others, in the form Quart and SQLAlchemy expect."""
    production = config["ENV"] == "production"
    if config["SESSION_COOKIE_SECURE"] is None:
        config["SESSION_COOKIE_SECURE"] = production
    if config["SESSION_COOKIE_NAME"] is None:
        config["SESSION_COOKIE_NAME"] = session_cookie_name(config)
    config["PERMANENT_SESSION_LIFETIME"] = timedelta(days=config["REMEMBER_ME_DAYS"])
    if config["TRUSTED_HOSTS"] is None:
        config["TRUSTED_HOSTS"] = list(DEVELOPMENT_HOSTS)
    if config["DATABASE_AUTO_UPGRADE"] is None:
        config["DATABASE_AUTO_UPGRADE"] = not production
    config["SQLALCHEMY_DATABASE_URL"] = database_url(
        config["DATABASE_URL"] or f"sqlite:///{instance_path / 'quartapp.db'}"
    )
    # Quart-WTF signs CSRF tokens with SECRET_KEY unless told otherwise, but it treats an
    # explicit None as "not configured" and fails, so only a real value is kept.
    if not config["WTF_CSRF_SECRET_KEY"]:
        config["WTF_CSRF_SECRET_KEY"] = config["SECRET_KEY"]


def session_cookie_name(config: Mapping[str, Any]) -> str:
    """The session cookie's name when none is configured.

    A Secure cookie gets a prefix that browsers enforce (RFC 6265bis, ASVS 3.3.3):
    ``__Host-`` (no Domain, Path=/: no subdomain or plain-HTTP page can set or shadow
    it), or ``__Secure-`` where a Domain or Path is configured.
    """
    if not config["SESSION_COOKIE_SECURE"]:
        return "session"
    return "__Host-session" if host_only_root_cookie(config) else "__Secure-session"
