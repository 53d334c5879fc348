"""Which fallback keys a rotation keeps: every one a live cookie may still be signed with.

A key stops signing when a rotation retires it; a cookie signed with it is re-signed
with the new key on its next response, so after the longest session lifetime
(``REMEMBER_ME_DAYS``) nothing valid is signed with it any more and it can go. To tell,
each rotation records when it retired each key, beside the fallbacks rather than in
them: ``SECRET_KEY_FALLBACKS`` stays the JSON list of strings every version of the app
reads. The record maps a short fingerprint of each key (never the key) to the time,
so a list edited by hand still matches up:

- in the environment, the variable ``SECRET_KEY_FALLBACKS_RETIRED``, a JSON object
  (the app reads only ``QUARTAPP_``-prefixed names and the few unprefixed ones it
  knows, so it never sees this one);
- in ``secrets.toml``, a comment line of the same JSON (the app refuses a key it does
  not know in that file, and every TOML reader skips a comment).

A fallback with no record (set by hand, or before records were kept) is taken as
retired at this rotation: the latest it can have been, so it is kept a full lifetime
more and then dropped. Standard library only, like the rest of :mod:`quartapp.keys`.
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

__all__ = [
    "COMMENT_PREFIX",
    "DEFAULT_SESSION_DAYS",
    "RETIRED_VARIABLE",
    "Rotation",
    "fingerprint",
    "from_comment",
    "parse_retired",
    "render_retired",
    "rotate",
    "session_days",
]

RETIRED_VARIABLE = "SECRET_KEY_FALLBACKS_RETIRED"
COMMENT_PREFIX = f"# {RETIRED_VARIABLE} = "
# REMEMBER_ME_DAYS's default in the settings table (a test keeps the two equal): this
# tool cannot import the settings, which need the framework.
DEFAULT_SESSION_DAYS = 30
_SESSION_SETTING = "REMEMBER_ME_DAYS"
_FINGERPRINT = re.compile(r"[0-9a-f]{12}")


def fingerprint(key: str) -> str:
    """12 hex digits of the key's SHA-256: enough to tell keys apart, nothing to sign with."""
    return hashlib.sha256(key.encode()).hexdigest()[:12]


def _timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_retired(raw: str, where: str) -> dict[str, datetime]:
    """The record's fingerprints and times; ``ValueError`` naming ``where`` if malformed."""
    try:
        data = json.loads(raw) if raw.strip() else {}
        if not isinstance(data, dict):
            raise ValueError
        retired: dict[str, datetime] = {}
        for key, value in data.items():
            if not (_FINGERPRINT.fullmatch(key) and isinstance(value, str)):
                raise ValueError
            moment = datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ")
            retired[key] = moment.replace(tzinfo=UTC)
        return retired
    except ValueError:
        raise ValueError(
            f'{where} is not a JSON object like {{"<fingerprint>": "2026-01-31T12:00:00Z"}}; '
            "fix or unset it (its fallbacks are then kept a full REMEMBER_ME_DAYS more)"
        ) from None


def render_retired(retired: Mapping[str, datetime]) -> str:
    """The record as compact JSON: no spaces, so one shell word once quoted."""
    return json.dumps(
        {key: _timestamp(moment) for key, moment in retired.items()}, separators=(",", ":")
    )


def from_comment(text: str, where: str) -> dict[str, datetime]:
    """The record in a secrets file's comment line, if it has one."""
    for line in text.splitlines():
        if line.startswith(COMMENT_PREFIX):
            return parse_retired(line.removeprefix(COMMENT_PREFIX), where)
    return {}


@dataclass(frozen=True)
class Rotation:
    """What a rotation keeps and drops, newest fallback first."""

    fallbacks: list[str]
    retired: dict[str, datetime]  # the kept fallbacks' fingerprints and times
    dropped: list[tuple[str, datetime]]  # fingerprint, and when it was retired
    days: int

    def report(self) -> str:
        """One line for the operator: how many were kept, and which were dropped."""
        kept = f"kept {len(self.fallbacks)} fallback key(s)"
        if not self.dropped:
            return f"{kept}; none was retired more than {self.days} days ago (REMEMBER_ME_DAYS)"
        gone = ", ".join(f"{key} (retired {_timestamp(when)})" for key, when in self.dropped)
        return (
            f"{kept}; dropped {len(self.dropped)} retired more than {self.days} days ago "
            f"(REMEMBER_ME_DAYS), by fingerprint: {gone}"
        )


def rotate(
    old_key: str,
    fallbacks: Sequence[str],
    retired: Mapping[str, datetime],
    *,
    days: int,
    now: datetime | None = None,
) -> Rotation:
    """Retire ``old_key`` now, and keep each fallback retired within ``days`` of now."""
    now = now or datetime.now(UTC)
    # The newest first, the order the app tries them in; a repeat counts once.
    ordered = list(dict.fromkeys([old_key, *fallbacks]))
    kept: list[str] = []
    times: dict[str, datetime] = {}
    dropped: list[tuple[str, datetime]] = []
    for key in ordered:
        mark = fingerprint(key)
        when = now if key == old_key else retired.get(mark, now)
        if now - when > timedelta(days=days):
            dropped.append((mark, when))
        else:
            kept.append(key)
            times[mark] = when
    return Rotation(kept, times, dropped, days)


def session_days(environ: Mapping[str, str], secrets: Mapping[str, object] | None = None) -> int:
    """``REMEMBER_ME_DAYS`` as the app would read it, from where this tool can see.

    The environment (``QUARTAPP_REMEMBER_ME_DAYS``), then ``secrets`` (the file being
    rotated), then the TOML config file (``QUARTAPP_CONFIG``, else ``config.toml`` at
    the repository root), then the default. ``ValueError`` for a value the app would
    refuse too.
    """
    raw = environ.get(f"QUARTAPP_{_SESSION_SETTING}")
    if raw:
        return _positive(raw.strip(), f"QUARTAPP_{_SESSION_SETTING}")
    if secrets and _SESSION_SETTING in secrets:
        return _positive(secrets[_SESSION_SETTING], _SESSION_SETTING)
    config = Path(environ.get("QUARTAPP_CONFIG") or Path(__file__).parents[2] / "config.toml")
    try:
        with config.open("rb") as handle:
            table = tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
        table = {}  # the app says what is wrong with it; here the default will do
    if _SESSION_SETTING in table:
        return _positive(table[_SESSION_SETTING], f"{_SESSION_SETTING} in {config}")
    return DEFAULT_SESSION_DAYS


def _positive(value: object, where: str) -> int:
    try:
        days = int(value) if isinstance(value, str | int) and not isinstance(value, bool) else 0
    except ValueError:
        days = 0
    if days < 1:
        raise ValueError(f"{where} must be a positive whole number of days, got {value!r}")
    return days


def environment_record(environ: Mapping[str, str]) -> dict[str, datetime]:
    """The record in the environment, if set."""
    return parse_retired(environ.get(RETIRED_VARIABLE, ""), RETIRED_VARIABLE)
