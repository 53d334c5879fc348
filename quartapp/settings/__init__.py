"""Loading and validating settings: the one place configuration comes from.

Sources, later wins:

1. the defaults in the table: the base's (:mod:`.schema`) and each feature's part;
2. ``config.toml`` at the repository root (or the file named by ``QUARTAPP_CONFIG``);
3. ``<instance>/secrets.toml``, written by ``python -m quartapp.keys``;
4. the environment: ``SECRET_KEY``, ``SECRET_KEY_FALLBACKS``, ``DATABASE_URL`` and any
   setting as ``QUARTAPP_<NAME>``;
5. ``overrides`` passed to ``create_app`` (tests).

A name that is not in the table, from any source, is refused with the closest known
name (:mod:`.sources`); each value is checked against its row, then across settings
(:mod:`.checks`, then each part's ``check``). Loading writes no file: the first run's
development keys are made by :func:`quartapp.bootstrap.prepare_instance` before it.
The app reads the result as frozen, typed sections (:mod:`.typed`): ``settings.current()``
for the base's, ``<feature>.settings.current()`` for a feature's. Only this package
reads ``os.environ``, and it names no feature: ``quartapp.setting_parts()`` hands the
parts in.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .. import keys
from .checks import (
    DEVELOPMENT_HOSTS,
    PLACEHOLDER_KEYS,
    check_across,
    check_each,
    derive,
    is_ip_address,
    session_cookie_name,
    settle_mode,
)
from .kinds import ConfigError, database_url
from .schema import BY_NAME, DEFAULTS, FRAMEWORK, KEY_FIX, SETTINGS, Part, Setting, table
from .sources import CONTROL, ENV_PREFIX, check_names, from_environment, read_secrets, read_toml
from .typed import Section, Settings, current, install, of, section

ROOT = Path(__file__).resolve().parents[2]

__all__ = [
    "BY_NAME",
    "CONTROL",
    "DEFAULTS",
    "DEVELOPMENT_HOSTS",
    "ENV_PREFIX",
    "FRAMEWORK",
    "KEY_FIX",
    "PLACEHOLDER_KEYS",
    "ROOT",
    "SETTINGS",
    "ConfigError",
    "Part",
    "Section",
    "Setting",
    "Settings",
    "current",
    "database_url",
    "defaults",
    "install",
    "instance_path",
    "is_ip_address",
    "load_config",
    "of",
    "read_secrets",
    "read_toml",
    "section",
    "session_cookie_name",
    "table",
]


def instance_path(overrides: Mapping[str, Any] | None = None) -> Path:
    """The instance folder: ``INSTANCE_PATH`` in overrides, QUARTAPP_INSTANCE_PATH, or
    ``instance/`` at the repository root."""
    return Path(
        (overrides or {}).get("INSTANCE_PATH")
        or os.environ.get(ENV_PREFIX + "INSTANCE_PATH")
        or ROOT / "instance"
    )


def defaults(parts: Iterable[Part] = ()) -> dict[str, Any]:
    """The table's defaults, the base's and the parts': what no source has set."""
    merged = dict(DEFAULTS)
    for part in parts:
        merged.update((row.name, row.default) for row in part.rows)
    return merged


def load_config(
    overrides: Mapping[str, Any] | None = None, parts: Iterable[Part] = ()
) -> dict[str, Any]:
    """Merge every source in order, check the result and fill derived settings.

    ``parts`` are the features' rows, merged with the base's into one table: a name
    none of them declares is refused. Reads files and the environment and writes
    nothing. In development with no key configured, ``SECRET_KEY`` stays None here;
    ``bootstrap.prepare_instance`` makes one.
    """
    parts = tuple(parts)
    known = table(parts)
    overrides = dict(overrides or {})
    environ = os.environ
    folder = instance_path(overrides)
    overrides.pop("INSTANCE_PATH", None)
    check_names(overrides, known)

    config = defaults(parts)
    origins: dict[str, str] = {}

    def merge(values: Mapping[str, Any], origin: str | Mapping[str, str]) -> None:
        config.update(values)
        for name in values:
            label = origin if isinstance(origin, str) else origin[name]
            if label:
                origins[name] = label
            else:
                origins.pop(name, None)

    config_file = Path(environ.get(ENV_PREFIX + "CONFIG") or ROOT / "config.toml")
    required = ENV_PREFIX + "CONFIG" in environ
    merge(read_toml(config_file, known, required=required), str(config_file))
    secrets_file = folder / keys.SECRETS_FILENAME
    merge(read_secrets(secrets_file, known), str(secrets_file))
    merge(*from_environment(environ, known))
    merge(overrides, "")
    config["INSTANCE_PATH"] = str(folder)

    check_each(config, origins, known)
    settle_mode(config)
    check_across(config)
    for part in parts:
        if part.check:
            part.check(config)
    derive(config, folder)
    for part in parts:
        if part.derive:
            part.derive(config)
    return config
