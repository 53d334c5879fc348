"""What a setting's value may be: the types the settings table is written in.

Each kind knows which values it accepts, how an environment variable spells one, and
how an error message describes it (``a positive integer``). Secrets are described by
type and length only: their values never reach a message.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

# The longest received value an error message repeats, in characters.
SHOWN_MAX = 80

ASYNC_DRIVERS = {
    "postgres": "postgresql+asyncpg",
    "postgresql": "postgresql+asyncpg",
    "postgresql+asyncpg": "postgresql+asyncpg",
    "sqlite": "sqlite+aiosqlite",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
}

# A cookie name is an RFC 9110 token.
COOKIE_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}")


class ConfigError(Exception):
    """A setting is missing, unknown or unsafe; ``message`` is one line saying the fix.

    A plain exception, so that settings depend on no front end: the CLI turns it into
    its one ``Error:`` line, and the server into ``quartapp: refusing to start: ...``.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Kind:
    """A type of setting: the values it accepts and how messages describe it."""

    described: str  # completes "NAME must be ...": "a positive integer"
    test: Callable[[object], bool]
    optional: bool = False  # None (unset) is accepted
    json: bool = True  # an environment value is parsed as JSON when it parses
    hint: str = ""  # appended to an error: how to make a good value

    def accepts(self, value: object) -> bool:
        """Whether ``value`` is one this kind allows."""
        return (self.optional and value is None) or self.test(value)

    def parse(self, raw: str) -> object:
        """An environment variable's text as a value of this kind (checked later).

        JSON kinds keep text that is not JSON as it is, so the error shows what came:
        ``[127.0.0.1]`` (a list whose quotes the shell ate) is refused as that string.
        """
        if not self.json:
            return raw
        try:
            return json.loads(raw)
        except json.JSONDecodeError:
            return raw


def integer(
    minimum: int,
    maximum: int | None = None,
    *,
    optional: bool = False,
    note: str = "",
    described: str = "",
) -> Kind:
    """Whole numbers from ``minimum`` (to ``maximum``); ``note`` says why the bound."""
    if not described:
        if maximum is not None:
            described = f"an integer from {minimum} to {maximum}"
        elif minimum in (0, 1):
            described = "a whole number" if minimum == 0 else "a positive integer"
        else:
            described = f"an integer of at least {minimum}"
        if note:
            described += f" ({note})"

    def test(value: object) -> bool:
        return (
            isinstance(value, int)
            and not isinstance(value, bool)
            and minimum <= value
            and (maximum is None or value <= maximum)
        )

    return Kind(described, test, optional=optional)


def flag(*, optional: bool = False) -> Kind:
    """true or false (JSON in the environment); ``optional``: unset means derived."""
    return Kind("true or false", lambda v: isinstance(v, bool), optional=optional)


def choice(*values: str, described: str = "", optional: bool = False) -> Kind:
    """One of a few fixed strings, spelled as they are (no JSON in the environment)."""
    if not described:
        quoted = [repr(v) for v in values]
        described = " or ".join(quoted) if len(quoted) == 2 else "one of " + ", ".join(quoted)
    return Kind(described, lambda v: v in values, optional=optional, json=False)


def text(
    *, min_length: int = 0, optional: bool = True, described: str = "a string", hint: str = ""
) -> Kind:
    """A string, kept as the environment gives it."""
    return Kind(
        described,
        lambda v: isinstance(v, str) and len(v) >= min_length,
        optional=optional,
        json=False,
        hint=hint,
    )


def strings(described: str, *, nonempty: bool = False, optional: bool = False) -> Kind:
    """A list of strings (JSON in the environment)."""
    return Kind(
        described,
        lambda v: (
            isinstance(v, list) and all(isinstance(i, str) and (i or not nonempty) for i in v)
        ),
        optional=optional,
    )


# A DNS host name: dot-separated labels of letters, digits and inner hyphens.
HOST_NAME = re.compile(
    r"(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*"
)


def host_name(described: str) -> Kind:
    """A lower-case DNS host name, such as ``example.com`` or ``localhost``."""
    return Kind(
        described,
        lambda v: isinstance(v, str) and HOST_NAME.fullmatch(v) is not None,
        optional=True,
        json=False,
    )


def cookie_name() -> Kind:
    """An RFC 9110 token of at most 64 characters."""
    return Kind(
        "a cookie name (letters, digits and !#$%&'*+-.^_`|~)",
        lambda v: isinstance(v, str) and COOKIE_NAME.fullmatch(v) is not None,
        optional=True,
        json=False,
        hint="or leave it unset",
    )


def url_path() -> Kind:
    """A URL path such as ``/`` or ``/app``."""
    return Kind(
        "a path starting with /",
        lambda v: isinstance(v, str) and v.startswith("/"),
        optional=True,
        json=False,
    )


def database(*, postgresql_only: bool = False) -> Kind:
    """A database URL that :func:`database_url` accepts (PostgreSQL's only, if asked)."""
    if postgresql_only:
        return Kind(
            "a postgresql://... URL of the database itself (not PgBouncer)",
            lambda v: _async_url(v).startswith("postgresql+"),
            optional=True,
            json=False,
            hint="or unset",
        )
    return Kind("a database URL", lambda v: isinstance(v, str), optional=True, json=False)


def _async_url(value: object) -> str:
    if not isinstance(value, str):
        return ""
    try:
        return database_url(value)
    except ConfigError:
        return ""


def database_url(raw: str) -> str:
    """Turn a database URL into the async SQLAlchemy form.

    PaaS add-ons hand out ``postgres://`` URLs (a name SQLAlchemy dropped) with libpq's
    ``sslmode`` parameter, which asyncpg spells ``ssl``. The messages never repeat the
    URL, which may hold a password.
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


def shown(value: object) -> str:
    """A received value as an error message shows it: its repr, cut to a readable length.

    The environment gives strings, so ``[127.0.0.1]`` (a list whose quotes the shell ate)
    shows up quoted, which is the hint. Never used for secrets.
    """
    text = repr(value)
    return text if len(text) <= SHOWN_MAX else text[: SHOWN_MAX - 3] + "..."


def secret_shown(value: object) -> str:
    """What a message says of a secret it refuses: the kind of mistake, never the value."""
    if isinstance(value, str):
        scheme = value.partition("://")[0] if "://" in value else ""
        if scheme.isascii() and scheme.replace("+", "").isalnum():
            return f"a {scheme}:// URL"
        return f"a str of {len(value)} characters"
    if isinstance(value, list) and not all(isinstance(item, str) for item in value):
        return "a list with an item that is not a string"
    kind = type(value).__name__
    return f"{'an' if kind[0] in 'aeiou' else 'a'} {kind}"
