"""Settings for tests that call a function directly, without building an app.

``DEFAULTS`` is every row's default, the base's and each feature's. :func:`load` checks
and derives settings the way ``create_app`` does, with a test key and no instance
folder, so the typed sections (:func:`site`, :func:`auth`) are the ones an app with
these overrides would read.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import quartapp
from quartapp.auth.settings import AuthSettings
from quartapp.settings import Settings, defaults

DEFAULTS: dict[str, Any] = defaults(quartapp.setting_parts())

KEY = "test-secret-key-0123456789abcdefghijklmnopq"
# Loading reads <instance>/secrets.toml if there is one: point it where there is none.
NO_INSTANCE = str(Path(tempfile.gettempdir()) / "quartapp-tests-no-instance")


def load(**overrides: Any) -> dict[str, Any]:
    """The checked, derived settings with ``overrides``, as an app would load them."""
    return quartapp.load_config({"SECRET_KEY": KEY, "INSTANCE_PATH": NO_INSTANCE, **overrides})


def site(**overrides: Any) -> Settings:
    """The base's typed settings with ``overrides``."""
    return Settings.from_config(load(**overrides))


def auth(**overrides: Any) -> AuthSettings:
    """auth's typed settings with ``overrides``."""
    return AuthSettings.from_config(load(**overrides))
