"""Loading and validating settings: the one place configuration comes from.

Sources, later wins:

1. ``DEFAULTS`` below;
2. ``config.toml`` at the repository root (or the file named by ``QUARTAPP_CONFIG``);
3. ``<instance>/secrets.toml``, written by ``python -m quartapp.keys``;
4. the environment: ``SECRET_KEY``, ``DATABASE_URL`` and any setting as ``QUARTAPP_<NAME>``;
5. ``overrides`` passed to ``create_app`` (tests).

Everything else reads ``current_app.config``; only this module reads ``os.environ``.
"""

from __future__ import annotations

import json
import logging
import os
import pwd
import re
import tomllib
from collections.abc import Callable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any, BinaryIO

import click
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from . import files, keys
from .db import USERNAME_COLUMN

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
ENV_PREFIX = "QUARTAPP_"
ASYNC_DRIVERS = {
    "postgres": "postgresql+asyncpg",
    "postgresql": "postgresql+asyncpg",
    "postgresql+asyncpg": "postgresql+asyncpg",
    "sqlite": "sqlite+aiosqlite",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
}
MODES = ("development", "production")

# OWASP's minimum for argon2id (Password Storage Cheat Sheet): nothing below is accepted.
ARGON2_MINIMUM = {"ARGON2_MEMORY_COST": 19456, "ARGON2_TIME_COST": 2, "ARGON2_PARALLELISM": 1}

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

# A cookie name is an RFC 9110 token.
COOKIE_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}")
# Settings also read from the environment without the QUARTAPP_ prefix (the names a
# PaaS and its add-ons use); the fallbacks are a JSON list, like ["old-key"].
UNPREFIXED = ("SECRET_KEY", "SECRET_KEY_FALLBACKS", "DATABASE_URL")
JSON_UNPREFIXED = frozenset({"SECRET_KEY_FALLBACKS"})

# The shortest METRICS_TOKEN accepted: long enough that guessing it is hopeless.
METRICS_TOKEN_MIN = 32

# The longest received value an error message repeats, in characters.
SHOWN_MAX = 80

# The IPv6 networks counted on top of THROTTLE_IPV6_PREFIX, and the most each may be
# allowed, in multiples of LOGIN_FAILURES_PER_ADDRESS (also their defaults).
IPV6_AGGREGATES = {"LOGIN_FAILURES_PER_IPV6_56": 4, "LOGIN_FAILURES_PER_IPV6_48": 16}

# Served in development when TRUSTED_HOSTS is not set: this machine's names only.
DEVELOPMENT_HOSTS = ("localhost", "127.0.0.1", "::1")

DEFAULTS: dict[str, Any] = {
    "ENV": None,  # None: development, unless TRUSTED_HOSTS says otherwise (_settle_mode)
    "DEBUG": False,
    "TESTING": False,
    "SECRET_KEY": None,
    "SECRET_KEY_FALLBACKS": [],
    "WTF_CSRF_TIME_LIMIT": 3600,
    "DATABASE_URL": None,  # development: a SQLite file in the instance folder
    "DATABASE_ECHO": False,
    # Connections per worker: POOL_SIZE kept open plus MAX_OVERFLOW opened under load.
    # Logins hold none while hashing, so a few serve a worker; see the README's
    # "PostgreSQL and scaling out" for the formula against a plan's connection limit.
    "DATABASE_POOL_SIZE": 3,
    "DATABASE_MAX_OVERFLOW": 1,
    # Seconds to wait for a free pooled connection, to connect, and for one statement:
    # past them a request gets the 503 page instead of hanging.
    "DATABASE_POOL_TIMEOUT": 5,
    "DATABASE_CONNECT_TIMEOUT": 5,
    "DATABASE_STATEMENT_TIMEOUT": 5,
    # Behind PgBouncer in transaction mode, prepared statements cannot be cached.
    "DATABASE_PGBOUNCER": False,
    # Where each process LISTENs for ended logins, for its login cache (PostgreSQL).
    # None: DATABASE_URL, except behind PgBouncer, which cannot LISTEN in transaction
    # mode; there the cache is off unless this names a direct connection.
    "DATABASE_LISTEN_URL": None,
    # Apply pending migrations when the app starts; None: in development only.
    "DATABASE_AUTO_UPGRADE": None,
    # None: "__Host-session" when the cookie is Secure (so a subdomain, or plain HTTP,
    # cannot set or shadow it: ASVS 3.3.3), else "session". A "__Host-" name needs Secure.
    "SESSION_COOKIE_NAME": None,
    "SESSION_COOKIE_HTTPONLY": True,
    "SESSION_COOKIE_SAMESITE": "Lax",
    "SESSION_COOKIE_SECURE": None,  # None: Secure exactly when ENV is production
    "REMEMBER_ME_DAYS": 30,
    "PASSWORD_MIN_LENGTH": 15,
    "PASSWORD_MAX_LENGTH": 1024,
    # zxcvbn's score (0-4) a new password needs; 3 is "safely unguessable" against an
    # online attack and needs about 10^8 guesses offline. 0 turns the check off.
    "PASSWORD_MIN_SCORE": 3,
    "USERNAME_MAX_LENGTH": 64,
    "ARGON2_TIME_COST": 3,
    "ARGON2_MEMORY_COST": 32768,
    "ARGON2_PARALLELISM": 1,
    "HASHING_CONCURRENCY": 2,
    # Logins that may wait for a hashing slot per process; past that, 503 at once.
    "HASHING_QUEUE": 8,
    # Of those HASHING_CONCURRENCY + HASHING_QUEUE places, how many one client (an
    # address network, a username, a user's trusted devices) may hold at once; as many
    # more are kept for trusted devices. One browser needs one place at a time.
    "HASHING_PLACES_PER_CLIENT": 2,
    "INITIAL_ADMIN": True,
    "LOGIN_FAILURES_PER_USER": 5,
    "LOGIN_FAILURES_PER_ADDRESS": 50,
    # A browser with a device cookie for the username has its own limit (see throttle.py).
    "LOGIN_FAILURES_PER_DEVICE": 5,
    "DEVICE_COOKIE_DAYS": 365,
    # New device records one user may mint per LOGIN_FAILURE_WINDOW (a login past it
    # gets no device cookie), and the records kept per user (least recently used go).
    "DEVICES_MINTED_PER_WINDOW": 5,
    "DEVICES_PER_USER": 10,
    # IPv6 clients are counted by network: a host is usually handed a whole /64.
    "THROTTLE_IPV6_PREFIX": 64,
    # Failures per /56 and per /48, on top of the per-/64 count, so a site handed a
    # /56 or /48 cannot rotate /64s past the limit. None: 4x and 16x the address limit,
    # which are also the most these may be.
    "LOGIN_FAILURES_PER_IPV6_56": None,
    "LOGIN_FAILURES_PER_IPV6_48": None,
    "LOGIN_FAILURE_WINDOW": 15 * 60,
    # Logins one user may hold at once; a new one past it ends the oldest (logins.py).
    "LOGINS_PER_USER_MAX": 50,
    "SESSION_IDLE_MINUTES": 30,
    "SESSION_MAX_HOURS": 12,
    "MAX_CONTENT_LENGTH": 64 * 1024,
    "BODY_TIMEOUT": 10,
    "MAX_FORM_PARTS": 20,
    "TRUSTED_HOSTS": None,  # None: localhost names in development; required in production
    "TRUSTED_PROXY_HOPS": 0,
    "LOG_LEVEL": "INFO",
    # One JSON line per request on stdout (quartapp/logs.py); hypercorn's is off.
    "ACCESS_LOG": True,
    # Bearer token for GET /metrics; None: metrics are off and /metrics is a 404.
    "METRICS_TOKEN": None,
}


class ConfigError(click.ClickException):
    """A setting is missing or unsafe; the message is one line saying how to fix it.

    It is a ClickException so that ``quart --app quartapp ...`` prints it as one
    ``Error:`` line and exits 1, instead of a traceback.
    """


def load_config(overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Merge every source in order, fill derived settings and validate the result."""
    overrides = dict(overrides or {})
    environ = os.environ
    instance_path = Path(
        overrides.get("INSTANCE_PATH")
        or environ.get("QUARTAPP_INSTANCE_PATH")
        or ROOT / "instance"
    )

    config = dict(DEFAULTS)
    config_file = environ.get("QUARTAPP_CONFIG") or str(ROOT / "config.toml")
    config.update(read_toml(Path(config_file), required="QUARTAPP_CONFIG" in environ))
    config.update(read_secrets(instance_path / keys.SECRETS_FILENAME))
    config.update(_from_environment(environ))
    config.update(overrides)
    config["INSTANCE_PATH"] = str(instance_path)

    _settle_mode(config)
    validate(config)
    _derive(config, instance_path)
    if not config["SECRET_KEY"]:
        _generate_development_keys(config, instance_path)
    # Quart-WTF signs CSRF tokens with SECRET_KEY unless told otherwise, but it treats an
    # explicit None as "not configured" and fails, so only a real value is kept.
    if not config.get("WTF_CSRF_SECRET_KEY"):
        config["WTF_CSRF_SECRET_KEY"] = config["SECRET_KEY"]
    return config


def read_toml(path: Path, *, required: bool) -> dict[str, Any]:
    """Read a TOML settings file; a missing optional file is an empty one."""
    try:
        with path.open("rb") as handle:
            return _parse_toml(path, handle)
    except FileNotFoundError:
        if required:
            raise ConfigError(f"config file {path} does not exist; fix QUARTAPP_CONFIG") from None
        return {}
    except OSError as error:
        raise ConfigError(f"cannot read config file {path}: {error}") from None


def _parse_toml(path: Path, handle: BinaryIO) -> dict[str, Any]:
    """The settings in an open TOML file, with upper-case names only."""
    try:
        data = tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"cannot read config file {path}: {error}") from None
    # Setting names are upper case, as in Quart; lower-case keys are a likely typo.
    unknown = [key for key in data if not key.isupper()]
    if unknown:
        raise ConfigError(f"{path}: setting names must be upper case, got {', '.join(unknown)}")
    return data


def read_secrets(path: Path) -> dict[str, Any]:
    """Read ``secrets.toml`` if it is ours: a missing file (or folder) is an empty one.

    It holds keys and may override any setting, so it is trusted only as a regular
    file that this user owns and alone can write, in a folder others cannot write to
    (the rules ``python -m quartapp.keys`` writes by). Otherwise whoever could write it
    would choose the keys, the password policy or the trusted proxies.
    """
    try:
        fd = files.open_private_file(path)
    except FileNotFoundError:
        return {}
    except files.UnsafePathError as error:
        reason = str(error)
        if reason.startswith(f"{path} "):  # the file itself; the folder's says its fix
            user = _user_name()
            reason += (
                f"; check what it holds, then make it a regular file of {user}'s that only "
                f"{user} can write: `chown {user} {path} && chmod 600 {path}`"
            )
        raise ConfigError(f"refusing to load {path}: {reason}") from None
    except OSError as error:
        raise ConfigError(f"cannot read {path}: {error.strerror or error}") from None
    with os.fdopen(fd, "rb") as handle:
        return _parse_toml(path, handle)


def _user_name() -> str:
    """This process's user name, or its uid where it has none (containers)."""
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())


def _from_environment(environ: Mapping[str, str]) -> dict[str, Any]:
    """Pick settings out of the environment the way Quart's ``from_prefixed_env`` does.

    Values are parsed as JSON when they parse (so ``QUARTAPP_DEBUG=false`` is a bool) and
    kept as strings otherwise. ``SECRET_KEY``, ``SECRET_KEY_FALLBACKS`` and
    ``DATABASE_URL`` are read unprefixed too, because that is what PaaS add-ons and
    ``config:set`` habits provide; the prefixed form works as well, and both forms with
    different values are refused.
    """
    values: dict[str, Any] = {}
    for name, raw in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX) or name in ("QUARTAPP_CONFIG", "QUARTAPP_ENV"):
            continue
        key = name.removeprefix(ENV_PREFIX)
        if key == "INSTANCE_PATH":
            continue
        values[key] = _parse_environment_value(raw)
    for name in UNPREFIXED:
        raw = environ.get(name, "")
        if not raw:
            continue
        parse: Callable[[str], Any] = _parse_environment_value if name in JSON_UNPREFIXED else str
        prefixed = environ.get(ENV_PREFIX + name)
        if prefixed and parse(prefixed) != parse(raw):
            # Which one would win is a guess the operator should not have to make.
            raise ConfigError(
                f"{name} and {ENV_PREFIX}{name} are both set and differ; unset one of them"
            )
        values[name] = parse(raw)
    if environ.get("QUARTAPP_ENV"):
        values["ENV"] = environ["QUARTAPP_ENV"]
    return values


def _parse_environment_value(raw: str) -> Any:
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def _settle_mode(config: dict[str, Any]) -> None:
    """Default to development, but refuse to guess for a site that names public hosts.

    A deploy that forgot QUARTAPP_ENV would otherwise run in development: generated
    per-instance keys, a logged admin password and cookies without Secure. Naming hosts
    beyond this machine is the sign of a deploy, so then the mode must be stated.
    """
    if config["ENV"] is not None:
        return
    hosts = config["TRUSTED_HOSTS"]
    if isinstance(hosts, list) and any(
        isinstance(host, str) and host.lower().strip("[]") not in DEVELOPMENT_HOSTS
        for host in hosts
    ):
        raise ConfigError(
            "TRUSTED_HOSTS names public hosts but QUARTAPP_ENV is not set; set "
            "QUARTAPP_ENV=production (or development for a trial)"
        )
    config["ENV"] = "development"


def validate(config: dict[str, Any]) -> None:
    """Refuse settings that are wrong or unsafe, with a message naming the fix."""
    mode = config["ENV"]
    if mode not in MODES:
        raise ConfigError(
            f"QUARTAPP_ENV must be 'development' or 'production', not {_shown(mode)}"
        )
    for name, minimum in ARGON2_MINIMUM.items():
        value = config[name]
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            raise ConfigError(
                f"{name} must be an integer of at least {minimum} (OWASP minimum), "
                f"not {_shown(value)}"
            )
    for name in (
        "REMEMBER_ME_DAYS",
        "PASSWORD_MIN_LENGTH",
        "PASSWORD_MAX_LENGTH",
        "USERNAME_MAX_LENGTH",
        "HASHING_CONCURRENCY",
        "WTF_CSRF_TIME_LIMIT",
        "LOGIN_FAILURES_PER_USER",
        "LOGIN_FAILURES_PER_ADDRESS",
        "LOGIN_FAILURES_PER_DEVICE",
        "DEVICE_COOKIE_DAYS",
        "DEVICES_MINTED_PER_WINDOW",
        "DEVICES_PER_USER",
        "HASHING_QUEUE",
        "HASHING_PLACES_PER_CLIENT",
        "LOGIN_FAILURE_WINDOW",
        "SESSION_IDLE_MINUTES",
        "SESSION_MAX_HOURS",
        "LOGINS_PER_USER_MAX",
        "MAX_CONTENT_LENGTH",
        "BODY_TIMEOUT",
        "MAX_FORM_PARTS",
        "DATABASE_POOL_SIZE",
        "DATABASE_POOL_TIMEOUT",
        "DATABASE_CONNECT_TIMEOUT",
        "DATABASE_STATEMENT_TIMEOUT",
    ):
        value = config[name]
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"{name} must be a positive integer, not {_shown(value)}")
    if config["USERNAME_MAX_LENGTH"] > USERNAME_COLUMN:
        raise ConfigError(
            f"USERNAME_MAX_LENGTH may be at most {USERNAME_COLUMN}, "
            f"not {config['USERNAME_MAX_LENGTH']}"
        )
    if config["PASSWORD_MIN_LENGTH"] > config["PASSWORD_MAX_LENGTH"]:
        raise ConfigError(
            f"PASSWORD_MIN_LENGTH ({config['PASSWORD_MIN_LENGTH']}) is larger than "
            f"PASSWORD_MAX_LENGTH ({config['PASSWORD_MAX_LENGTH']})"
        )
    score = config["PASSWORD_MIN_SCORE"]
    if not isinstance(score, int) or isinstance(score, bool) or not 0 <= score <= 4:
        raise ConfigError(
            f"PASSWORD_MIN_SCORE must be an integer from 0 to 4, not {_shown(score)}"
        )
    places = config["HASHING_CONCURRENCY"] + config["HASHING_QUEUE"]
    if config["HASHING_PLACES_PER_CLIENT"] > places:
        raise ConfigError(
            f"HASHING_PLACES_PER_CLIENT may be at most HASHING_CONCURRENCY + HASHING_QUEUE "
            f"({places})"
        )
    for name, times in IPV6_AGGREGATES.items():
        value = config[name]
        most = times * config["LOGIN_FAILURES_PER_ADDRESS"]
        if value is not None and (
            not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= most
        ):
            raise ConfigError(
                f"{name} must be a positive integer of at most {times} x "
                f"LOGIN_FAILURES_PER_ADDRESS ({most}), not {value!r}"
            )
    prefix = config["THROTTLE_IPV6_PREFIX"]
    if not isinstance(prefix, int) or isinstance(prefix, bool) or not 1 <= prefix <= 128:
        raise ConfigError(
            f"THROTTLE_IPV6_PREFIX must be a prefix length 1-128, not {_shown(prefix)}"
        )
    overflow = config["DATABASE_MAX_OVERFLOW"]
    if not isinstance(overflow, int) or isinstance(overflow, bool) or overflow < 0:
        raise ConfigError(f"DATABASE_MAX_OVERFLOW must be a whole number, not {_shown(overflow)}")
    for flag in ("DATABASE_PGBOUNCER", "DATABASE_ECHO", "ACCESS_LOG"):
        if not isinstance(config[flag], bool):
            raise ConfigError(f"{flag} must be true or false, not {_shown(config[flag])}")
    listen = config["DATABASE_LISTEN_URL"]
    if listen is not None and not _is_postgresql_url(listen):
        raise ConfigError(
            "DATABASE_LISTEN_URL must be a postgresql://... URL of the database itself "
            "(not PgBouncer), or unset"
        )
    if config["DATABASE_AUTO_UPGRADE"] not in (None, True, False):
        raise ConfigError(
            f"DATABASE_AUTO_UPGRADE must be true or false, not "
            f"{_shown(config['DATABASE_AUTO_UPGRADE'])}"
        )
    hops = config["TRUSTED_PROXY_HOPS"]
    if not isinstance(hops, int) or isinstance(hops, bool) or hops < 0:
        raise ConfigError(
            f"TRUSTED_PROXY_HOPS must be a whole number of proxies, not {_shown(hops)}"
        )
    fallbacks = config["SECRET_KEY_FALLBACKS"]
    if not isinstance(fallbacks, list) or not all(isinstance(k, str) for k in fallbacks):
        # A secret: its type is shown, never its value.
        got = (
            "a list with an item that is not a string"
            if isinstance(fallbacks, list)
            else (f"a {type(fallbacks).__name__}")
        )
        raise ConfigError(
            'SECRET_KEY_FALLBACKS must be a list of strings, like ["old-key"] (JSON in the '
            f"environment), not {got}"
        )
    if config["LOG_LEVEL"] not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigError(
            "LOG_LEVEL must be one of DEBUG, INFO, WARNING or ERROR, "
            f"not {_shown(config['LOG_LEVEL'])}"
        )
    _validate_cookie_name(config)
    hosts = config["TRUSTED_HOSTS"]
    if hosts is not None and (
        not isinstance(hosts, list) or not all(isinstance(h, str) and h for h in hosts)
    ):
        raise ConfigError(
            'TRUSTED_HOSTS must be a list of host names, like ["app.example.com"] (JSON in '
            f"the environment), not {_shown(hosts)}"
        )
    token = config["METRICS_TOKEN"]
    if token is not None and (not isinstance(token, str) or len(token) < METRICS_TOKEN_MIN):
        # A secret: only what is wrong with it is shown.
        raise ConfigError(
            f"METRICS_TOKEN must be a string of at least {METRICS_TOKEN_MIN} characters; "
            "make one with `python -m quartapp.keys --print`"
        )
    if mode == "production":
        _validate_production(config)


def _validate_cookie_name(config: dict[str, Any]) -> None:
    """A configured session cookie name must be a cookie name its browser will keep.

    Browsers drop a ``__Host-`` cookie without Secure, with a Domain or with a Path
    other than ``/``, and a ``__Secure-`` one without Secure: the site would then run
    with no session at all, so such a setting is refused here instead.
    """
    name = config["SESSION_COOKIE_NAME"]
    if name is None:
        return
    if not isinstance(name, str) or not COOKIE_NAME.fullmatch(name):
        raise ConfigError(
            "SESSION_COOKIE_NAME must be a cookie name (letters, digits and !#$%&'*+-.^_`|~), "
            f"not {name!r}; or leave it unset"
        )
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
    if prefix == "__Host-" and not _host_only_root_cookie(config):
        raise ConfigError(
            f"SESSION_COOKIE_NAME {name!r} needs Path=/ and no Domain; unset "
            "SESSION_COOKIE_DOMAIN and SESSION_COOKIE_PATH, or pick a name without __Host-"
        )


def _host_only_root_cookie(config: Mapping[str, Any]) -> bool:
    """Whether the session cookie is set with no Domain and Path=/ (as Quart builds it)."""
    path = config.get("SESSION_COOKIE_PATH") or config.get("APPLICATION_ROOT") or "/"
    return not config.get("SESSION_COOKIE_DOMAIN") and path == "/"


def _shown(value: object) -> str:
    """A received value as an error message shows it: its repr, cut to a readable length.

    The environment gives strings, so ``[127.0.0.1]`` (a list whose quotes the shell ate)
    shows up quoted, which is the hint. Never used for secrets.
    """
    text = repr(value)
    return text if len(text) <= SHOWN_MAX else text[: SHOWN_MAX - 3] + "..."


def _is_postgresql_url(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        return database_url(value).startswith("postgresql+")
    except ConfigError:
        return False


def _validate_production(config: dict[str, Any]) -> None:
    fix = "run `python -m quartapp.keys --print` and set SECRET_KEY to its value"
    key = config["SECRET_KEY"]
    if not key:
        raise ConfigError(f"SECRET_KEY is missing in production; {fix}")
    if not isinstance(key, str) or len(key.encode()) < keys.MIN_ENTROPY_BYTES:
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


def _derive(config: dict[str, Any], instance_path: Path) -> None:
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
    for name, times in IPV6_AGGREGATES.items():
        if config[name] is None:
            config[name] = times * config["LOGIN_FAILURES_PER_ADDRESS"]
    config["SQLALCHEMY_DATABASE_URL"] = database_url(
        config["DATABASE_URL"] or f"sqlite:///{instance_path / 'quartapp.db'}"
    )


def session_cookie_name(config: Mapping[str, Any]) -> str:
    """The session cookie's name when none is configured.

    A Secure cookie gets a prefix that browsers enforce (RFC 6265bis, ASVS 3.3.3):
    ``__Host-`` (no Domain, Path=/: no subdomain or plain-HTTP page can set or shadow
    it), or ``__Secure-`` where a Domain or Path is configured.
    """
    if not config["SESSION_COOKIE_SECURE"]:
        return "session"
    return "__Host-session" if _host_only_root_cookie(config) else "__Secure-session"


def database_url(raw: str) -> str:
    """Turn a database URL into the async SQLAlchemy form.

    PaaS add-ons hand out ``postgres://`` URLs (a name SQLAlchemy dropped) with libpq's
    ``sslmode`` parameter, which asyncpg spells ``ssl``.
    """
    try:
        url = make_url(raw)
    except ArgumentError:
        raise ConfigError(
            "DATABASE_URL is not a database URL; use postgresql://... or sqlite:///path"
        ) from None
    driver = ASYNC_DRIVERS.get(url.drivername, url.drivername)
    if driver not in ASYNC_DRIVERS.values():
        raise ConfigError(
            f"DATABASE_URL scheme {url.drivername!r} is not supported; "
            "use postgresql://... or sqlite:///path"
        )
    url = url.set(drivername=driver)
    if driver == "postgresql+asyncpg" and "sslmode" in url.query:
        url = url.difference_update_query(["sslmode"]).update_query_dict(
            {"ssl": url.query["sslmode"]}
        )
    return url.render_as_string(hide_password=False)


def _generate_development_keys(config: dict[str, Any], instance_path: Path) -> None:
    """Give a fresh development checkout working keys so ``make run`` just works.

    hypercorn's workers all get here at once on a fresh checkout; one of them creates
    the file and the rest read it, so that they all sign with the same keys.
    """
    try:
        path, created = keys.ensure_secrets(instance_path)
    except keys.KeyFileError as error:
        raise ConfigError(f"SECRET_KEY is not set and {error}") from None
    generated = read_secrets(path)
    if not generated.get("SECRET_KEY"):
        raise ConfigError(
            f"SECRET_KEY is not set and {path} has none; run `python -m quartapp.keys "
            "--force` to replace that file, or set SECRET_KEY"
        )
    config["SECRET_KEY"] = generated["SECRET_KEY"]
    if generated.get("WTF_CSRF_SECRET_KEY"):
        config["WTF_CSRF_SECRET_KEY"] = generated["WTF_CSRF_SECRET_KEY"]
    if created:
        log.warning("no SECRET_KEY was configured; generated one into %s", path)
