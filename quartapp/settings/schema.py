"""The table of settings: each one's name, type and limits, default, secrecy and meaning.

The table is the one list of what may be configured. It gives ``DEFAULTS``, how an
environment value is parsed, the check of each value on its own and its message, and
the names an unknown one is compared with. Here are the rows of the shared base; a
feature's rows are in its own ``settings.py``, as a :class:`Part` that the loader merges
with these (:func:`quartapp.settings.load_config`). Checks across the base's settings,
and production's, are in :mod:`.checks`. A new setting is one row:
docs/configuration.md is made from the tables by :mod:`.reference`
(tests/app/test_docs.py checks the page is current).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .kinds import (
    ConfigError,
    Kind,
    choice,
    cookie_name,
    database,
    flag,
    integer,
    strings,
    text,
    url_path,
)

if TYPE_CHECKING:
    from .typed import Section

MODES = ("development", "production")
KEY_FIX = "make one with `python -m quartapp.keys --print`"


@dataclass(frozen=True)
class Setting:
    """One row of the table."""

    name: str
    kind: Kind
    default: object
    meaning: str  # one line of Markdown, the configuration page's "meaning" column
    secret: bool = False  # its value is never shown in a message
    unprefixed: bool = False  # also read from the environment without QUARTAPP_
    # Also read from this variable, which a platform sets itself (Heroku's DYNO).
    platform: str | None = None


@dataclass(frozen=True)
class Part:
    """A feature's rows of the table, the typed section they fill, and its own checks.

    ``check`` refuses values of these rows that do not fit together (or with the base's),
    raising :class:`ConfigError`; ``derive`` fills what is computed from them. Both get
    the merged settings of every source, checked row by row, after the base's own.
    """

    title: str  # heads its table on the configuration page
    rows: tuple[Setting, ...]
    section: type[Section]
    check: Callable[[Mapping[str, Any]], None] | None = None
    derive: Callable[[dict[str, Any]], None] | None = None


def _row(
    name: str,
    kind: Kind,
    default: object,
    meaning: str,
    *,
    secret: bool = False,
    unprefixed: bool = False,
) -> Setting:
    return Setting(name, kind, default, meaning, secret, unprefixed)


POSITIVE = integer(1)

SETTINGS: tuple[Setting, ...] = (
    # None: development, unless TRUSTED_HOSTS names public hosts (checks.settle_mode).
    _row(
        "ENV",
        choice(*MODES, optional=True),
        None,
        "`development` or `production`; unset: `development`, unless `TRUSTED_HOSTS` names"
        " other hosts than this machine's, which refuses to start until the mode is set",
    ),
    _row("DEBUG", flag(), False, "Quart's debug mode; refused in production"),
    _row("TESTING", flag(), False, "Quart's testing mode; refused in production"),
    _row(
        "SECRET_KEY",
        text(hint=KEY_FIX),
        None,
        "signs the session cookie; required in production (32 bytes or more, not a published"
        " sample); development generates one on the first run",
        secret=True,
        unprefixed=True,
    ),
    _row(
        "SECRET_KEY_FALLBACKS",
        strings('a list of strings, like ["old-key"] (JSON in the environment)'),
        [],
        "older keys still accepted for existing cookies, a JSON list in the environment"
        " (`'[\"old-key\"]'`); a cookie signed with one is re-signed with `SECRET_KEY`",
        secret=True,
        unprefixed=True,
    ),
    _row(
        "WTF_CSRF_SECRET_KEY",
        text(hint=KEY_FIX),
        None,
        "signs CSRF tokens; unset: `SECRET_KEY`",
        secret=True,
    ),
    _row("WTF_CSRF_TIME_LIMIT", POSITIVE, 3600, "seconds a rendered form stays valid"),
    _row(
        "DATABASE_URL",
        database(),
        None,
        "any async SQLAlchemy URL (`postgres://` is accepted); unset: `sqlite:///instance/"
        "quartapp.db` in development, required in production",
        secret=True,  # it may hold the database password
        unprefixed=True,
    ),
    _row("DATABASE_ECHO", flag(), False, "log every SQL statement"),
    # Connections per worker: POOL_SIZE kept open plus MAX_OVERFLOW opened under load.
    # A logged-in GET holds one for one round trip on a cache miss and none on a hit,
    # and logins hold none while hashing: at 50 connections and +1 ms, 1, 2, 3+1 and 6
    # served /hello alike (docs/performance.md). docs/deploy.md, "PostgreSQL and scaling
    # out", has the formula against a plan's connection limit (the listener adds one per
    # worker).
    _row("DATABASE_POOL_SIZE", POSITIVE, 2, "connections kept open per worker"),
    _row("DATABASE_MAX_OVERFLOW", integer(0), 1, "connections opened under load per worker"),
    # Past these a request gets the 503 page instead of hanging.
    _row(
        "DATABASE_POOL_TIMEOUT",
        POSITIVE,
        5,
        "seconds to wait for a pooled connection; then the 503 page",
    ),
    _row("DATABASE_CONNECT_TIMEOUT", POSITIVE, 5, "seconds to wait to connect; then the 503 page"),
    _row(
        "DATABASE_STATEMENT_TIMEOUT",
        POSITIVE,
        5,
        "seconds one statement may take; then the 503 page",
    ),
    # Behind PgBouncer in transaction mode, prepared statements cannot be cached.
    _row(
        "DATABASE_PGBOUNCER",
        flag(),
        False,
        "the database is PgBouncer in transaction mode: no cached prepared statements",
    ),
    # None: DATABASE_URL, except behind PgBouncer, which cannot LISTEN in transaction
    # mode; there the cache is off unless this names a direct connection.
    _row(
        "DATABASE_LISTEN_URL",
        database(postgresql_only=True),
        None,
        "PostgreSQL only: where each process `LISTEN`s for ended logins, for its login cache;"
        " unset: `DATABASE_URL`, except behind PgBouncer, where a direct URL of the same"
        " database turns the cache on",
        secret=True,
    ),
    _row(
        "DATABASE_AUTO_UPGRADE",
        flag(optional=True),
        None,
        "apply pending migrations when the app starts; unset: in development only",
    ),
    # None: "__Host-session" when the cookie is Secure (so a subdomain, or plain HTTP,
    # cannot set or shadow it: ASVS 3.3.3), else "session". A "__Host-" name needs Secure.
    _row(
        "SESSION_COOKIE_NAME",
        cookie_name(),
        None,
        "the session cookie's name; unset: `__Host-session` when Secure, else `session`; a"
        " `__Host-` or `__Secure-` name needs Secure (and `__Host-` no Domain, Path `/`),"
        " or the app refuses to start",
    ),
    _row("SESSION_COOKIE_HTTPONLY", flag(), True, "keep the session cookie from scripts"),
    # Not "None": a cross-site cookie would undo half of the CSRF defence.
    _row(
        "SESSION_COOKIE_SAMESITE",
        choice("Lax", "Strict"),
        "Lax",
        "the cookie's SameSite (not `None`)",
    ),
    _row(
        "SESSION_COOKIE_SECURE",
        flag(optional=True),
        None,
        "send the cookie over HTTPS only; unset: exactly in production",
    ),
    _row("REMEMBER_ME_DAYS", POSITIVE, 30, 'days a "remember me" login lasts'),
    _row(
        "MAX_CONTENT_LENGTH", POSITIVE, 64 * 1024, "largest request body, in bytes; past it, 413"
    ),
    _row("BODY_TIMEOUT", POSITIVE, 10, "seconds to receive a request body"),
    _row("MAX_FORM_PARTS", POSITIVE, 20, "most fields a form post may have"),
    # None: localhost names in development; required in production.
    _row(
        "TRUSTED_HOSTS",
        strings(
            'a list of host names, like ["app.example.com"] (JSON in the environment)',
            nonempty=True,
            optional=True,
        ),
        None,
        'host names served; `".example.com"` matches subdomains; unset: `localhost`,'
        " `127.0.0.1` and `::1` in development, required in production",
    ),
    _row(
        "TRUSTED_PROXY_HOPS",
        integer(0, described="a whole number of proxies"),
        0,
        "proxies whose `X-Forwarded-*` headers are trusted",
    ),
    # Behind a trusted proxy in production, a request it reports as plain HTTP gets a
    # 308 to HTTPS (web.security); false where TLS ends before a proxy that says "http".
    _row(
        "HTTPS_REDIRECT",
        flag(),
        True,
        "in production behind `TRUSTED_PROXY_HOPS`, a request the proxy reports as plain "
        "HTTP gets a 308 to the same URL on HTTPS (`/healthz` excepted); `false` where TLS "
        "ends before a proxy that says `http`",
    ),
    _row(
        "LOG_LEVEL",
        choice(
            "DEBUG", "INFO", "WARNING", "ERROR", described="one of DEBUG, INFO, WARNING or ERROR"
        ),
        "INFO",
        "level of the app's log on stderr, the audit log included",
    ),
    # One JSON line per request on stdout (quartapp/logs.py); hypercorn's is off.
    _row(
        "ACCESS_LOG",
        flag(),
        True,
        "one JSON line per request on stdout, and the `X-Request-ID` header",
    ),
)

# The allow-list: Quart's own settings an operator may set, passed to Quart as they are.
# They have no default here (Quart's stands) and are checked for their type only. Any
# other Quart or Quart-WTF name is refused like a typo: SERVER_NAME (host names are
# TRUSTED_HOSTS), WTF_CSRF_ENABLED (CSRF cannot be switched off), and the rest, which
# the app sets itself or has no use for. docs/configuration.md lists them.
FRAMEWORK: tuple[Setting, ...] = (
    _row(
        "SESSION_COOKIE_DOMAIN",
        text(),
        None,
        "the session cookie's Domain (then its default name is `__Secure-session`)",
    ),
    _row(
        "SESSION_COOKIE_PATH",
        url_path(),
        None,
        "the session cookie's Path (as for the Domain, no `__Host-` name)",
    ),
    _row(
        "APPLICATION_ROOT",
        url_path(),
        None,
        "the path the app is mounted at, for the cookie's Path",
    ),
    _row(
        "PREFERRED_URL_SCHEME",
        choice("http", "https"),
        None,
        "`http` or `https`, for external URLs built outside a request",
    ),
    _row(
        "SEND_FILE_MAX_AGE_DEFAULT",
        integer(0, optional=True),
        None,
        "seconds browsers may cache static files",
    ),
    _row(
        "PROPAGATE_EXCEPTIONS",
        flag(optional=True),
        None,
        "re-raise errors to the server (debugging)",
    ),
    _row(
        "WTF_CSRF_SSL_STRICT",
        flag(),
        None,
        "over HTTPS, require a same-origin `Origin`, `Referer` or `Sec-Fetch-Site` on posts "
        "(default: on)",
    ),
)

BY_NAME: dict[str, Setting] = {row.name: row for row in SETTINGS + FRAMEWORK}
DEFAULTS: dict[str, Any] = {row.name: row.default for row in SETTINGS}


def table(parts: Iterable[Part]) -> dict[str, Setting]:
    """Every known name: the base's rows, the allow-list and each part's rows.

    Two rows of one name would make one of them dead, so that is refused here.
    """
    known = dict(BY_NAME)
    for part in parts:
        for row in part.rows:
            if row.name in known:
                raise ConfigError(f"setting {row.name} is declared twice ({part.title})")
            known[row.name] = row
    return known


# Names close to a setting that are not one, and what to set instead: a plain "did you
# mean" would send the operator to the wrong name or to one the app refuses.
INSTEAD = {
    "SERVER_NAME": "host names go in TRUSTED_HOSTS",
    "WTF_CSRF_ENABLED": "CSRF protection cannot be switched off",
    "PERMANENT_SESSION_LIFETIME": "it follows REMEMBER_ME_DAYS; set that instead",
    "SQLALCHEMY_DATABASE_URI": "set DATABASE_URL instead",
    "SQLALCHEMY_DATABASE_URL": "set DATABASE_URL instead",
    # Read from the environment only (sources.CONTROL): a file cannot say where files are.
    "INSTANCE_PATH": "set QUARTAPP_INSTANCE_PATH in the environment instead",
    "CONFIG": "set QUARTAPP_CONFIG in the environment instead",
}
