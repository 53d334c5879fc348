"""The settings as frozen, typed objects: read ``settings.remember_me_days``, not a string.

:func:`quartapp.settings.load_config` checks every value against its row and fills
what is derived; a :class:`Section` is then built once per app from that checked dict,
each field ``name`` from the setting ``NAME``, and kept in ``app.extensions``
(:func:`install`). :class:`Settings` is the shared base's; each feature declares its
own section beside its rows (``quartapp/<feature>/settings.py``) and reads it through
:func:`section`. Lists become tuples, so a section is immutable through and through.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, Self, TypeVar, cast

if TYPE_CHECKING:
    from quart import Quart

    from .schema import Part

EXTENSION = "quartapp.settings"

S = TypeVar("S", bound="Section")


@dataclass(frozen=True, slots=True)
class Section:
    """A frozen group of typed settings; a subclass is a frozen, slotted dataclass."""

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Self:
        """The section's values in checked, derived settings: field ``name`` is ``NAME``."""
        return cls.build(config)

    @classmethod
    def build(cls, config: Mapping[str, Any], **given: object) -> Self:
        """As :meth:`from_config`, with the fields in ``given`` (not settings) set as given."""
        values = {
            field.name: _frozen(config[field.name.upper()])
            for field in fields(cls)
            if field.name not in given
        }
        return cls(**values, **given)


def _frozen(value: object) -> object:
    return tuple(value) if isinstance(value, list) else value


@dataclass(frozen=True, slots=True)
class Settings(Section):
    """The shared base's settings, after ``derive`` and the first run's keys."""

    env: str  # settled: "development" or "production"
    debug: bool
    testing: bool
    secret_key: str  # built after bootstrap.prepare_instance, which makes one if none
    secret_key_fallbacks: tuple[str, ...]
    wtf_csrf_secret_key: str
    wtf_csrf_time_limit: int
    database_url: str | None
    database_echo: bool
    database_pool_size: int
    database_max_overflow: int
    database_pool_timeout: int
    database_connect_timeout: int
    database_statement_timeout: int
    database_pgbouncer: bool
    database_listen_url: str | None
    database_auto_upgrade: bool
    session_cookie_name: str
    session_cookie_httponly: bool
    session_cookie_samesite: str
    session_cookie_secure: bool
    remember_me_days: int
    max_content_length: int
    body_timeout: int
    max_form_parts: int
    trusted_hosts: tuple[str, ...]
    trusted_proxy_hops: int
    https_redirect: bool
    log_level: str
    access_log: bool
    # Derived (checks.derive), not rows of the table.
    instance_path: str
    sqlalchemy_database_url: str  # DATABASE_URL in SQLAlchemy's async form

    @property
    def production(self) -> bool:
        """Whether the app runs in production."""
        return self.env == "production"


def install(app: Quart, config: Mapping[str, Any], parts: Iterable[Part]) -> None:
    """Build the base's section and each part's once, into ``app.extensions``."""
    built: dict[type[Section], Section] = {Settings: Settings.from_config(config)}
    for part in parts:
        built[part.section] = part.section.from_config(config)
    app.extensions[EXTENSION] = built


def section(app: Quart, kind: type[S]) -> S:
    """``app``'s section of type ``kind``, as :func:`install` built it."""
    # Keyed by its own type, so the value is of it.
    return cast(S, app.extensions[EXTENSION][kind])


def of(app: Quart) -> Settings:
    """``app``'s base settings, outside a request (CLI, bootstrap, ``init_app``)."""
    return section(app, Settings)


def current() -> Settings:
    """The serving app's base settings."""
    from quart import current_app

    return section(current_app, Settings)
