"""``python -m bench.ratings``: what one password rating costs, plain zxcvbn against quartapp's.

Prints the CPU time (``time.process_time``, best of a few runs) of rating l33t-heavy
inputs at lengths 16 to 72, the slowest random input found at each length, and a
passphrase, each with plain ``zxcvbn()`` on the first 72 characters (what quartapp did
before issue 12) and with :func:`quartapp.auth.ratings.rate`. It reports; it asserts nothing
(``tests/auth/test_ratings.py`` holds the one bound).
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable

from zxcvbn import zxcvbn

from quartapp.auth import ratings

L33T = "4@8(<{[3!1|0$5+7%2"
LETTERS = "abcegilostxz"
INPUTS = ["quartapp", "alice"]
LENGTHS = (16, 24, 32, 40, 48, 56, 64, 72)


def plain(password: str) -> object:
    """What quartapp did before issue 12: zxcvbn on the first 72 characters."""
    return zxcvbn(password[:72], user_inputs=INPUTS)


def ours(password: str) -> object:
    """quartapp's rating now."""
    return ratings.rate(password, INPUTS)


def cpu_ms(rate: Callable[[str], object], password: str, runs: int) -> float:
    """The least process CPU time, in milliseconds, of ``runs`` ratings of ``password``."""
    best = float("inf")
    for _ in range(runs):
        started = time.process_time()
        rate(password)
        best = min(best, time.process_time() - started)
    return best * 1000


def main(argv: list[str] | None = None) -> int:
    """Print the table; ``--samples`` random inputs per length are tried for the worst."""
    parser = argparse.ArgumentParser(prog="python -m bench.ratings", description=__doc__)
    parser.add_argument("--samples", type=int, default=60, help="random inputs per length")
    parser.add_argument("--runs", type=int, default=3, help="runs per input; the least counts")
    parser.add_argument("--plain", action="store_true", help="also time plain zxcvbn on them")
    args = parser.parse_args(argv)
    rng = random.Random(12)  # noqa: S311 (reproducible test inputs, not secrets)
    ratings.rate("warm up the dictionaries", INPUTS)

    print("input                                   chars  plain zxcvbn  quartapp  pieces")
    cases = [(f"l33t repeated to {n}", (L33T * 4)[:n]) for n in (16, 32, 72)]
    cases.append(("70-character passphrase", "correct horse battery staple " * 3))
    for name, text in cases:
        password = text[:72]
        before = cpu_ms(plain, password, args.runs)
        now = cpu_ms(ours, password, args.runs)
        pieces = [len(piece) for piece in ratings.rated_pieces(password)]
        print(f"{name:40}{len(password):5}  {before:9.1f} ms  {now:5.1f} ms  {pieces}")

    print("\nslowest random input per length (l33t characters, some with letters)")
    for length in LENGTHS:
        pool = [L33T] * args.samples + [L33T + LETTERS] * (args.samples // 3)
        candidates = ["".join(rng.choice(chars) for _ in range(length)) for chars in pool]
        timed = [(cpu_ms(ours, p, args.runs), p) for p in candidates]
        worst, password = max(timed)
        line = f"{length:3} chars: quartapp {worst:5.1f} ms"
        if args.plain:
            line += f", plain zxcvbn {cpu_ms(plain, password, 1):7.1f} ms"
        print(f"{line}  {password!r}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
