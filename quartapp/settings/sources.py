"""Where settings come from: ``config.toml``, ``secrets.toml`` and the environment.

Each source gives names from the table (the base's in :mod:`.schema` and the features'
parts, merged by the caller) only. Any other name stops
the app with one line naming it and the closest known name, so a typo is never
silently a default. Nothing here writes a file.
"""

from __future__ import annotations

import difflib
import os
import pwd
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, BinaryIO

from .. import files
from .kinds import ConfigError
from .schema import INSTEAD, Setting

ENV_PREFIX = "QUARTAPP_"

# Variables with the prefix that are not settings but say where settings are. Tools
# that need a QUARTAPP_ variable of their own must add it here, or the app refuses it.
CONTROL = {
    "CONFIG": "the TOML settings file to read instead of `config.toml`",
    "INSTANCE_PATH": "the instance folder (default `instance/`): `secrets.toml`, the SQLite"
    " file and the first-run admin password",
}


def check_names(
    names: Iterable[str], known: Mapping[str, Setting], where: str = "", *, prefix: str = ""
) -> None:
    """Refuse a name that is not a setting (in ``known``), suggesting the closest one.

    ``where`` says which file the names are from; ``prefix`` is how the environment
    spells them, and the suggestion carries it too: a variable is refused with the
    variable to set, not the setting's bare name, which the environment would ignore.
    The value is never shown: a misspelled SECRET_KEY is still a secret.
    """
    for name in names:
        if name in known:
            continue
        label = f"{prefix}{name}" + (f" in {where}" if where else "")
        if name in INSTEAD:
            raise ConfigError(f"setting {label} is not supported; {INSTEAD[name]}")
        close = closest(
            name, [*(prefix + k for k in known), *(prefix + n for n in CONTROL if prefix)]
        )
        advice = (
            f"did you mean {close}?"
            if close
            else "the settings are listed in docs/configuration.md"
        )
        raise ConfigError(f"unknown setting {label}; {advice}")


def closest(name: str, known: list[str]) -> str | None:
    """The known name ``name`` most likely misspells, if any is close enough.

    difflib's ratio finds typos; a name that one contains at its start
    (``ENVIRONMENT`` for ``ENV``) is too short a match for the ratio, so it is the
    second guess.
    """
    bare = {candidate.removeprefix(ENV_PREFIX): candidate for candidate in known}
    close = difflib.get_close_matches(name, bare, n=1, cutoff=0.6)
    if close:
        return bare[close[0]]
    started = [c for c in bare if c.startswith(name) or name.startswith(c)]
    if not started:
        return None
    best = max(started, key=lambda c: difflib.SequenceMatcher(None, name, c).ratio())
    return bare[best]


def read_toml(path: Path, known: Mapping[str, Setting], *, required: bool) -> dict[str, Any]:
    """Read a TOML settings file of ``known`` names; a missing optional file is empty."""
    try:
        with path.open("rb") as handle:
            return _parse_toml(path, handle, known)
    except FileNotFoundError:
        if required:
            raise ConfigError(f"config file {path} does not exist; fix QUARTAPP_CONFIG") from None
        return {}
    except OSError as error:
        raise ConfigError(f"cannot read config file {path}: {error}") from None


def _parse_toml(path: Path, handle: BinaryIO, known: Mapping[str, Setting]) -> dict[str, Any]:
    """The settings in an open TOML file, each a known upper-case name."""
    try:
        data = tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"cannot read config file {path}: {error}") from None
    # Setting names are upper case, as in Quart; lower-case keys are a likely typo.
    lower = [key for key in data if not key.isupper()]
    if lower:
        raise ConfigError(f"{path}: setting names must be upper case, got {', '.join(lower)}")
    check_names(data, known, str(path))
    return data


def read_secrets(path: Path, known: Mapping[str, Setting]) -> dict[str, Any]:
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
        return _parse_toml(path, handle, known)


def _user_name() -> str:
    """This process's user name, or its uid where it has none (containers)."""
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())


def from_environment(
    environ: Mapping[str, str], known: Mapping[str, Setting]
) -> tuple[dict[str, Any], dict[str, str]]:
    """The settings in the environment, and the variable each came from.

    Every ``QUARTAPP_<NAME>`` must be a setting (or one of ``CONTROL``). Its value is
    parsed as the table declares: JSON for numbers, flags and lists (so
    ``QUARTAPP_DEBUG=false`` is a bool), the text as it is for strings (so a numeric
    token stays a string). An empty variable counts as unset. ``SECRET_KEY``,
    ``SECRET_KEY_FALLBACKS`` and ``DATABASE_URL`` are read unprefixed too, because that
    is what PaaS add-ons and ``config:set`` habits provide, and a row may name a
    variable the platform sets itself (``DYNO`` for ``METRICS_INSTANCE``); two of these
    with different values are refused.
    """
    prefixed = {
        name.removeprefix(ENV_PREFIX): raw
        for name, raw in environ.items()
        if name.startswith(ENV_PREFIX) and name.removeprefix(ENV_PREFIX) not in CONTROL
    }
    check_names(sorted(prefixed), known, prefix=ENV_PREFIX)
    values: dict[str, Any] = {}
    origins: dict[str, str] = {}
    for name, raw in prefixed.items():
        if raw:
            values[name] = known[name].kind.parse(raw)
            origins[name] = ENV_PREFIX + name
    for row in known.values():
        for variable in other_names(row):
            plain = environ.get(variable)
            if not plain:
                continue
            value = row.kind.parse(plain)
            if row.name in values and values[row.name] != value:
                # Which one would win is a guess the operator should not have to make.
                raise ConfigError(
                    f"{variable} and {origins[row.name]} are both set and differ;"
                    " unset one of them"
                )
            values[row.name] = value
            origins[row.name] = variable
    return values, origins


def other_names(row: Setting) -> list[str]:
    """The variables besides ``QUARTAPP_<NAME>`` that set ``row``."""
    return [*([row.name] if row.unprefixed else []), *([row.platform] if row.platform else [])]
