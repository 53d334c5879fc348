"""Loading and validating settings: the one place configuration comes from.

Sources, later wins:

1. the defaults in the table (:mod:`.schema`);
2. ``config.toml`` at the repository root (or the file named by ``QUARTAPP_CONFIG``);
3. ``<instance>/secrets.toml``, written by ``python -m quartapp.keys``;
4. the environment: ``SECRET_KEY``, ``SECRET_KEY_FALLBACKS``, ``DATABASE_URL`` and any
   setting as ``QUARTAPP_<NAME>``;
5. ``overrides`` passed to ``create_app`` (tests).

A name that is not in the table, from any source, is refused with the closest known
name (:mod:`.sources`); each value is checked against its row, then across settings
(:mod:`.checks`). Loading writes no file: the first run's development keys are made
by :func:`quartapp.bootstrap.prepare_instance` before it. Everything else reads
``current_app.config``; only this package reads ``os.environ``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .. import keys
from .checks import (
    DEVELOPMENT_HOSTS,
    PLACEHOLDER_KEYS,
    check_across,
    check_each,
    derive,
    session_cookie_name,
    settle_mode,
)
from .kinds import ConfigError, database_url
from .schema import ARGON2_MINIMUM, BY_NAME, DEFAULTS, FRAMEWORK, SETTINGS, Setting
from .sources import CONTROL, ENV_PREFIX, check_names, from_environment, read_secrets, read_toml

ROOT = Path(__file__).resolve().parents[2]

__all__ = [
    "ARGON2_MINIMUM",
    "BY_NAME",
    "CONTROL",
    "DEFAULTS",
    "DEVELOPMENT_HOSTS",
    "ENV_PREFIX",
    "FRAMEWORK",
    "PLACEHOLDER_KEYS",
    "ROOT",
    "SETTINGS",
    "ConfigError",
    "Setting",
    "database_url",
    "instance_path",
    "load_config",
    "read_secrets",
    "read_toml",
    "session_cookie_name",
]


def instance_path(overrides: Mapping[str, Any] | None = None) -> Path:
    """The instance folder: ``INSTANCE_PATH`` in overrides, QUARTAPP_INSTANCE_PATH, or
    ``instance/`` at the repository root."""
    return Path(
        (overrides or {}).get("INSTANCE_PATH")
        or os.environ.get(ENV_PREFIX + "INSTANCE_PATH")
        or ROOT / "instance"
    )


def load_config(overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Merge every source in order, check the result and fill derived settings.

    Reads files and the environment and writes nothing. In development with no key
    configured, ``SECRET_KEY`` stays None here; ``bootstrap.prepare_instance`` makes one.
    """
    overrides = dict(overrides or {})
    environ = os.environ
    folder = instance_path(overrides)
    overrides.pop("INSTANCE_PATH", None)
    check_names(overrides)

    config: dict[str, Any] = dict(DEFAULTS)
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
    merge(read_toml(config_file, required=ENV_PREFIX + "CONFIG" in environ), str(config_file))
    secrets_file = folder / keys.SECRETS_FILENAME
    merge(read_secrets(secrets_file), str(secrets_file))
    merge(*from_environment(environ))
    merge(overrides, "")
    config["INSTANCE_PATH"] = str(folder)

    check_each(config, origins)
    settle_mode(config)
    check_across(config)
    derive(config, folder)
    return config
