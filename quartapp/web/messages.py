"""Flashed messages that cannot grow the session cookie without bound.

Flashes live in the cookie until a page shows them. A client that keeps requesting
``/hello`` without ever loading a page would otherwise pile up copies of "You need to
login first." until the cookie passes the browser's 4 KB limit and is dropped.
"""

from __future__ import annotations

from quart import session

from .speedups import FLASHES

MAX_WAITING = 5


async def flash(message: str, category: str = "message") -> None:
    """Queue a message for the next page, once, keeping at most ``MAX_WAITING``."""
    waiting = [entry for entry in session.get(FLASHES, []) if tuple(entry) != (category, message)]
    waiting.append((category, message))
    session[FLASHES] = waiting[-MAX_WAITING:]
