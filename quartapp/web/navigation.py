"""Where a request came from and where it may go next: ``requested_path`` and ``safe_next``."""

from __future__ import annotations

from quart import request


def requested_path() -> str:
    """The path and query of this request, to come back to after logging in."""
    query = request.query_string.decode("latin-1")
    return f"{request.path}?{query}" if query else request.path


def safe_next(target: str | None) -> str | None:
    """``target`` if it is a path on this site, else None.

    Browsers read ``//host``, ``/\\host`` and URLs with tabs or newlines in them as other
    sites, so anything but a plain absolute path is refused. A string that starts with
    a single ``/`` has no scheme and no host, so nothing else needs parsing.
    """
    if not target or len(target) > 2048 or not target.startswith("/"):
        return None
    if target.startswith("//") or "\\" in target:
        return None
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in target):
        return None
    return target
