"""The ``python -m quartapp.keys`` command line: parse the options, write or print keys.

Standard library only, like the rest of :mod:`quartapp.keys`.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from collections.abc import Mapping
from pathlib import Path

from . import (
    MIN_ENTROPY_BYTES,
    SECRETS_FILENAME,
    KeyFileError,
    generate_key,
    retire,
    rotate_secrets,
    write_secrets,
)

__all__ = ["environment_key", "main", "rotated_environment"]


def _entropy_bytes(text: str) -> int:
    """argparse type for --randomness: a whole number of at least MIN_ENTROPY_BYTES."""
    try:
        nbytes = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if nbytes < MIN_ENTROPY_BYTES:
        raise argparse.ArgumentTypeError(
            f"must be at least the minimum of {MIN_ENTROPY_BYTES} bytes, got {nbytes}"
        )
    return nbytes


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m quartapp.keys",
        description=f"Write fresh secret keys to DIR/{SECRETS_FILENAME} (mode 0600).",
    )
    parser.add_argument(
        "-d",
        "--dir",
        type=Path,
        default=Path("instance"),
        help="directory for the secrets file, created if missing (default: ./instance)",
    )
    parser.add_argument(
        "-r",
        "--randomness",
        type=_entropy_bytes,
        default=MIN_ENTROPY_BYTES,
        metavar="N",
        help=f"bytes of entropy per key, at least {MIN_ENTROPY_BYTES} (default: %(default)s)",
    )
    # Pairwise exclusive: --force discards the old key, --rotate keeps it, and --print
    # never touches the file at all.
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "-f",
        "--force",
        action="store_true",
        help="overwrite an existing file (everyone is logged out)",
    )
    mode.add_argument(
        "--rotate",
        action="store_true",
        help="replace the keys but keep the old SECRET_KEY as a fallback so sessions survive, "
        "with every fallback retired less than REMEMBER_ME_DAYS ago; with SECRET_KEY in the "
        "environment, print the values to set there instead and write nothing",
    )
    mode.add_argument(
        "--print",
        dest="print_key",
        action="store_true",
        help="print SECRET_KEY=<key> for a PaaS's config:set and write nothing (ignores -d)",
    )
    return parser


def environment_key(environ: Mapping[str, str]) -> str | None:
    """The ``SECRET_KEY`` the app would take from ``environ`` (either spelling), if any."""
    return environ.get("SECRET_KEY") or environ.get("QUARTAPP_SECRET_KEY") or None


def rotated_environment(
    environ: Mapping[str, str], *, nbytes: int = MIN_ENTROPY_BYTES
) -> tuple[str, retire.Rotation]:
    """The settings to set for a rotation of an environment-configured key.

    Returns three lines a shell accepts as they are (after ``export`` or a PaaS's
    ``config:set``), ``SECRET_KEY=<new>``, ``SECRET_KEY_FALLBACKS='[<old>, ...]'`` and
    ``SECRET_KEY_FALLBACKS_RETIRED='{...}'``: the old key first, then every fallback
    already set that was retired within ``REMEMBER_ME_DAYS`` (or whose retirement is
    not recorded), and when each was retired. Also returns what was kept and dropped.
    Raises ``KeyFileError`` when the environment's fallbacks are not a JSON list of
    strings (the app would refuse them too), or its record or REMEMBER_ME_DAYS cannot
    be read.
    """
    old_key = environment_key(environ)
    if old_key is None:
        raise KeyFileError("SECRET_KEY is not set in the environment, so there is none to rotate")
    raw = environ.get("SECRET_KEY_FALLBACKS") or environ.get("QUARTAPP_SECRET_KEY_FALLBACKS")
    try:
        old_fallbacks = json.loads(raw) if raw else []
    except json.JSONDecodeError:
        old_fallbacks = None
    if not isinstance(old_fallbacks, list) or not all(isinstance(k, str) for k in old_fallbacks):
        raise KeyFileError(
            'SECRET_KEY_FALLBACKS in the environment is not a JSON list of strings like ["k"]; '
            "fix or unset it first"
        )
    try:
        record = retire.environment_record(environ)
        days = retire.session_days(environ)
    except ValueError as exc:
        raise KeyFileError(str(exc)) from None
    rotation = retire.rotate(old_key, old_fallbacks, record, days=days)
    # Compact JSON: no spaces, so the value is one shell word once quoted.
    listed = json.dumps(rotation.fallbacks, separators=(",", ":"))
    lines = (
        f"SECRET_KEY={shlex.quote(generate_key(nbytes))}\n"
        f"SECRET_KEY_FALLBACKS={shlex.quote(listed)}\n"
        f"{retire.RETIRED_VARIABLE}={shlex.quote(retire.render_retired(rotation.retired))}"
    )
    return lines, rotation


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status (usage errors exit 2 via argparse)."""
    args = _build_parser().parse_args(argv)
    if args.print_key:
        print(f"SECRET_KEY={generate_key(args.randomness)}")
        return 0
    if args.rotate and environment_key(os.environ):
        # The environment's key wins over any file, so a file would change nothing:
        # print what to set instead, and write nothing.
        try:
            lines, change = rotated_environment(os.environ, nbytes=args.randomness)
        except KeyFileError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(lines)
        print(
            "SECRET_KEY is set in the environment: set the three values above there (for "
            "example `heroku config:set` with the three lines) in one change, and restart; "
            f"nothing was written. {change.report()}",
            file=sys.stderr,
        )
        return 0
    rotation: retire.Rotation | None = None
    try:
        if args.rotate:
            path, rotation = rotate_secrets(args.dir, nbytes=args.randomness)
        else:
            path = write_secrets(args.dir, nbytes=args.randomness, force=args.force)
    except KeyFileError as exc:
        # One actionable line, no traceback: the reader is fixing a broken deploy.
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if environment_key(os.environ):
        print(
            f"note: SECRET_KEY is set in the environment and overrides {path}",
            file=sys.stderr,
        )
    if rotation is not None:
        print(
            f"wrote new SECRET_KEY and WTF_CSRF_SECRET_KEY to {path} (mode 0600); "
            f"the old SECRET_KEY moved to SECRET_KEY_FALLBACKS; {rotation.report()}"
        )
    else:
        print(f"wrote SECRET_KEY and WTF_CSRF_SECRET_KEY to {path} (mode 0600)")
    return 0
