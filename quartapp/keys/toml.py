"""Writing the secrets file's TOML: the standard library reads TOML but cannot write it.

Written by hand rather than with tomli-w so that ``python -m quartapp.keys`` stays
standard-library only. Every value it writes reads back unchanged with ``tomllib``
(tests/keys/test_keys.py checks that with Hypothesis).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import TypeAlias

__all__ = ["Scalar", "Value", "document"]

Scalar: TypeAlias = str | int | float | bool
Value: TypeAlias = Scalar | list[Scalar]
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def document(header: Sequence[str], values: Mapping[str, Value]) -> str:
    """Serialise ``values`` as a TOML document under the comment lines ``header``."""
    lines = [*header, ""]
    lines += [f"{_toml_key(key)} = {_toml_value(value)}" for key, value in values.items()]
    return "\n".join(lines) + "\n"


def _toml_key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else _toml_string(key)


def _toml_value(value: Value) -> str:
    # bool before int: True is an int, but TOML spells it `true`.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        # Python's repr is valid TOML for every float, including inf, -inf and nan, and
        # is the shortest string that reads back as the same float.
        return repr(value)
    if isinstance(value, str):
        return _toml_string(value)
    return "[" + ", ".join(_toml_value(item) for item in value) + "]"


def _toml_string(text: str) -> str:
    """Quote ``text`` as a TOML basic string.

    A JSON string is a TOML basic string: both use "..." with the same escapes (\\" \\\\
    \\b \\f \\n \\r \\t \\uXXXX) and json.dumps escapes every C0 control character. Two
    gaps are closed here: ensure_ascii=False keeps astral characters literal, because
    JSON's surrogate-pair escapes are invalid in TOML; and TOML, unlike JSON, forbids a
    literal DEL.
    """
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")
