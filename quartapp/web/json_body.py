"""Reading a JSON request body: the one reader every JSON endpoint uses.

Quart's ``request.get_json(silent=True)`` absorbs a syntax error only: a body nested a
thousand deep (a ``RecursionError``), one that is not UTF-8, or a number too long for
``int()`` escaped it as a 500. :func:`read_object` refuses each of them, and anything
else a page of ours never sends, with :class:`BadBody`, whose status (400, 413 or 415)
and message the endpoint answers in JSON.

What passes is a JSON object (a ``dict``) of at most ``MAX_DEPTH`` levels, with no
key twice, no ``NaN`` or ``Infinity`` and no number longer than ``MAX_NUMBER_DIGITS``,
sent as UTF-8 with no byte order mark, within the app's ``MAX_CONTENT_LENGTH``.
"""

from __future__ import annotations

import json
import math
import operator
import re
from itertools import accumulate, count
from typing import Any, NoReturn

from quart import request
from werkzeug.exceptions import RequestEntityTooLarge

__all__ = ["MAX_DEPTH", "MAX_NUMBER_DIGITS", "BadBody", "parse_object", "read_object"]

# Deeper than any request of ours (the passkey answers are three levels), far below
# the depth at which json's recursive parser runs out of stack.
MAX_DEPTH = 32
# A number of ours is a count or a flag; 40 characters holds any 64-bit integer and any
# float's repr with room to spare. Python would parse 4,300 digits (or refuse with a
# ValueError json does not turn into a JSONDecodeError).
MAX_NUMBER_DIGITS = 40

NOT_JSON = "Send the request as a JSON object."
NOT_UTF8 = "Send JSON as UTF-8, with no byte order mark."
TOO_DEEP = f"The JSON is nested too deeply (at most {MAX_DEPTH} levels)."
DUPLICATE = "The JSON names a key twice."
BAD_NUMBER = "The JSON has a number this site does not accept."
TOO_LARGE = "The request is larger than this site accepts."

# A JSON string, escapes included (the unrolled form: linear, no backtracking).
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = re.compile(rb"[^\[\]{}]")
# An opening bracket becomes 2 and a closing one 0, so the running sum of the bytes,
# less one per byte, is the depth after each (see _depth).
_WEIGHTS = bytes.maketrans(b"[{]}", b"\x02\x02\x00\x00")
_BOMS = (b"\xef\xbb\xbf", b"\xfe\xff", b"\xff\xfe")


class BadBody(Exception):
    """A request body that is not the JSON object asked for: the status and why."""

    def __init__(self, message: str, reason: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason
        self.status = status


def _refuse(message: str, reason: str, status: int = 400) -> NoReturn:
    raise BadBody(message, reason, status)


def _depth(raw: bytes) -> int:
    """The deepest nesting of ``[`` and ``{`` outside strings, without recursion.

    Runs in C (regular expressions and itertools), so a body of brackets costs about
    as much to measure as to copy.
    """
    brackets = _NOT_BRACKET.sub(b"", _STRING.sub(b"", raw)).translate(_WEIGHTS)
    if not brackets:
        return 0
    return int(max(map(operator.sub, accumulate(brackets), count(1))))


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found = dict(pairs)
    if len(found) != len(pairs):
        _refuse(DUPLICATE, "duplicate key")
    return found


def _integer(text: str) -> int:
    if len(text) > MAX_NUMBER_DIGITS:
        _refuse(BAD_NUMBER, "long number")
    return int(text)


def _float(text: str) -> float:
    value = float(text) if len(text) <= MAX_NUMBER_DIGITS else math.inf
    if not math.isfinite(value):  # 1e999 is infinity
        _refuse(BAD_NUMBER, "long number")
    return value


def _constant(text: str) -> NoReturn:
    _refuse(BAD_NUMBER, f"constant {text}")


def parse_object(raw: bytes) -> dict[str, Any]:
    """The JSON object in ``raw``; :class:`BadBody` (400) for anything else."""
    if raw.startswith(_BOMS):
        _refuse(NOT_UTF8, "byte order mark")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        _refuse(NOT_UTF8, "not utf-8")
    # Before parsing, so deep nesting never reaches json's recursive parser.
    if _depth(raw) > MAX_DEPTH:
        _refuse(TOO_DEEP, "too deep")
    try:
        # UTF-16 or UTF-32 read as UTF-8 has NULs between the characters, which strict
        # json refuses outside strings and in them alike.
        data = json.loads(
            text,
            object_pairs_hook=_no_duplicates,
            parse_int=_integer,
            parse_float=_float,
            parse_constant=_constant,
        )
    except (ValueError, RecursionError):  # JSONDecodeError is a ValueError
        _refuse(NOT_JSON, "not json")
    if not isinstance(data, dict):
        _refuse(NOT_JSON, "not an object")
    return data


async def read_object() -> dict[str, Any]:
    """The request's body as a JSON object; :class:`BadBody` for anything else.

    415 for another content type or charset, 413 for a body over
    ``MAX_CONTENT_LENGTH``, 400 for everything :func:`parse_object` refuses.
    """
    if request.mimetype != "application/json":
        _refuse(NOT_JSON, "not json", 415)
    charset = request.mimetype_params.get("charset", "utf-8").lower()
    if charset not in {"utf-8", "utf8"}:
        _refuse(NOT_UTF8, "charset", 415)
    try:
        # Quart stops reading at MAX_CONTENT_LENGTH, declared or not.
        raw = await request.get_data(as_text=False)
    except RequestEntityTooLarge:
        _refuse(TOO_LARGE, "too large", 413)
    return parse_object(raw if isinstance(raw, bytes) else raw.encode())
