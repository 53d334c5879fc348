"""Rating how guessable a new password is with zxcvbn, at a bounded cost.

:func:`rate` bounds what one rating costs; :func:`bounded` runs ratings off the event
loop, one at a time per process, with a short line and a 503 beyond it. The password
policy itself (what score is needed) is in :mod:`.users`.
"""

from __future__ import annotations

import asyncio
import functools
import threading
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, ParamSpec, TypeVar

from ..web.errors import Busy

P = ParamSpec("P")
T = TypeVar("T")

# What a rating may cost (docs/security.md, "Passwords", has the measurements). zxcvbn's time grows
# with the square of the length, times the number of l33t substitution tables it tries:
# one per way of reading the l33t characters present (4 and @ both as "a", 1 and | as
# "i" or "l", ...), 368 when all 18 of them appear. So only the first RATED_PREFIX
# characters are rated, in pieces of at most L33T_TABLES_MAX tables each: a piece ends
# where one more l33t character would exceed it. Measured worst case: about 23 ms.
RATED_PREFIX = 32
L33T_TABLES_MAX = 16
# Ratings waiting for the one running per process; past that, 503 at once.
RATING_QUEUE = 4
# zxcvbn keeps the user inputs of the call in a module-level dictionary while it runs,
# so two threads rating at once could see each other's usernames.
_RATING = threading.Lock()


class RatingBusy(Busy):
    """Too many password ratings are already waiting; try again shortly."""


@dataclass
class RatingGate:
    """One rating at a time on an event loop, and a bounded line for it.

    Waited for on the loop: callers queued on _RATING inside threads would hold the
    default executor's threads, which argon2 needs.
    """

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    # Places taken: the rating running now plus those waiting for it.
    taken: int = 0


@dataclass
class RatingCount:
    """How many ratings this process has started: what tests observe."""

    started: int = 0


_GATES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, RatingGate] = (
    weakref.WeakKeyDictionary()
)
RATINGS = RatingCount()


def rated_pieces(password: str) -> list[str]:
    """The text zxcvbn rates: the first RATED_PREFIX characters, cut into pieces.

    A piece ends before the l33t character that would make zxcvbn try more than
    L33T_TABLES_MAX substitution tables, so no piece costs more than a plain rating of
    its length. Ordinary passwords, l33t ones included ("P@$$w0rd!" needs one table),
    are one piece.
    """
    prefix = password[:RATED_PREFIX]
    l33t_characters = _l33t_characters()
    pieces: list[str] = []
    start = 0
    seen: set[str] = set()
    for index, character in enumerate(prefix):
        if character not in l33t_characters or character in seen:
            continue
        if l33t_tables("".join(seen) + character) > L33T_TABLES_MAX:
            pieces.append(prefix[start:index])
            start, seen = index, set()
        seen.add(character)
    pieces.append(prefix[start:])
    return pieces


@functools.cache
def _l33t_characters() -> frozenset[str]:
    """Every character zxcvbn's l33t matcher reads as another."""
    from zxcvbn import matching

    return frozenset(c for subs in matching.L33T_TABLE.values() for c in subs)


def l33t_tables(text: str) -> int:
    """How many substitution tables zxcvbn's l33t matcher tries for ``text``."""
    from zxcvbn import matching

    table = matching.relevant_l33t_subtable(text, matching.L33T_TABLE)
    return len(matching.enumerate_l33t_subs(table))


def rate(password: str, inputs: Sequence[str]) -> tuple[int, Mapping[str, Any]]:
    """zxcvbn's score (0-4) for ``password`` and its feedback, at a bounded cost.

    ``inputs`` are words an attacker would try (the username, the site's name). Pieces
    (see :func:`rated_pieces`) are rated alone and their guesses multiplied, as zxcvbn
    multiplies the guesses of the parts it finds; the feedback is the weakest piece's.
    """
    # zxcvbn is imported on first use: its dictionaries are about 14 MiB of every
    # worker, and most workers rate no password for hours (only new passwords are rated).
    from zxcvbn import time_estimates, zxcvbn

    with _RATING:
        RATINGS.started += 1
        results = [zxcvbn(piece, user_inputs=list(inputs)) for piece in rated_pieces(password)]
    if len(results) == 1:
        return int(results[0]["score"]), results[0]["feedback"]
    log10 = sum(float(result["guesses_log10"]) for result in results)
    weakest = min(results, key=lambda result: float(result["guesses_log10"]))
    # zxcvbn computes guesses as Decimal too; the conversion from float is exact.
    return int(time_estimates.guesses_to_score(Decimal(10**log10))), weakest["feedback"]


def gate() -> RatingGate:
    """The running event loop's rating gate (a process serves from one loop)."""
    return _GATES.setdefault(asyncio.get_running_loop(), RatingGate())


async def bounded(work: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run a rating (``work``) in a thread, one at a time on this loop.

    At most RATING_QUEUE wait for the running one; past that :class:`RatingBusy`
    at once, which the error handlers answer with the 503 page and ``Retry-After``.
    """
    line = gate()
    if line.taken > RATING_QUEUE:
        raise RatingBusy("the password rating queue is full")
    line.taken += 1
    try:
        async with line.lock:
            return await asyncio.to_thread(work, *args, **kwargs)
    finally:
        line.taken -= 1
