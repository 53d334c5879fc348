"""Tests for quartapp/auth/ratings.py: what a rating costs, its pieces, its line."""

from __future__ import annotations

import asyncio

import pytest

from quartapp.auth import ratings, users
from tests.support.settings import DEFAULTS
from tests.support.settings import auth as load_auth_settings

AUTH = load_auth_settings()

L33T = "4@8(<{[3!1|0$5+7%2"
# The issue's case: 72 l33t characters cost plain zxcvbn 1.4-5 s of CPU.
ISSUE_72 = (L33T * 4)[:72]
# The slowest 32 characters a 90 s hill-climb found (docs/security.md, "Passwords").
CLIMBED_WORST = "1@84!5+81c%|g+108(!0%4i1![+{0@57"
# Only a guard against hanging forever when the code under test is broken.
HANG_GUARD = 30
INPUTS = [*users.SITE_WORDS, "alice"]


@pytest.mark.parametrize(
    "password",
    [ISSUE_72, CLIMBED_WORST, *((L33T * 4)[:length] for length in (16, 32, 48, 64))],
    ids=["issue-72", "climbed-worst", "l33t-16", "l33t-32", "l33t-48", "l33t-64"],
)
def test_the_worst_measured_inputs_are_rated_in_bounded_pieces(password: str) -> None:
    # What bounds a rating's CPU time is the l33t tables each piece makes zxcvbn try;
    # the time itself is measured by `python -m bench.ratings`, not asserted here.
    pieces = ratings.rated_pieces(password)

    assert "".join(pieces) == password[: ratings.RATED_PREFIX]
    assert all(ratings.l33t_tables(piece) <= ratings.L33T_TABLES_MAX for piece in pieces)
    assert ratings.rate(password, INPUTS)[0] in range(5)


def test_l33t_heavy_text_is_rated_in_pieces_of_bounded_work() -> None:
    pieces = ratings.rated_pieces(ISSUE_72)

    assert "".join(pieces) == ISSUE_72[: ratings.RATED_PREFIX]
    assert len(pieces) > 1
    assert all(ratings.l33t_tables(piece) <= ratings.L33T_TABLES_MAX for piece in pieces)


@pytest.mark.parametrize("password", ["P@$$w0rd!2024ab", "c0rrect h0rse b@ttery st@ple"])
def test_ordinary_l33t_passwords_are_rated_whole(password: str) -> None:
    assert ratings.rated_pieces(password) == [password]


@pytest.mark.parametrize(
    ("password", "strong"),
    [
        (ISSUE_72, True),
        ("||$51<(0@24114+$102", True),
        ("p@$$w0rdp@$$w0rd", False),
        ("passwordpassword" + "x" * 40, False),
        ("a brand new passphrase, also long", True),
    ],
    ids=["issue-72", "symbols-in-pieces", "l33t-repeat", "weak-prefix", "passphrase"],
)
def test_rating_judges_the_rated_prefix(password: str, strong: bool) -> None:
    score, _ = ratings.rate(password, INPUTS)

    assert (score >= DEFAULTS["PASSWORD_MIN_SCORE"]) is strong


async def test_ratings_past_the_line_are_turned_away_at_once() -> None:
    gate = ratings.gate()
    async with gate.lock:
        # Held here, the lock stalls every rating: these take the running place and
        # the whole line, and wait.
        waiting = [
            asyncio.ensure_future(users.vet_password("another long passphrase", AUTH))
            for _ in range(1 + ratings.RATING_QUEUE)
        ]
        await asyncio.sleep(0)

        with pytest.raises(ratings.RatingBusy):
            await asyncio.wait_for(
                users.vet_password("one more long passphrase", AUTH), HANG_GUARD
            )
    results = await asyncio.wait_for(asyncio.gather(*waiting), HANG_GUARD)
    assert results == [None] * (1 + ratings.RATING_QUEUE)
    assert gate.taken == 0


async def test_the_length_is_refused_without_a_rating() -> None:
    before = ratings.RATINGS.started

    with pytest.raises(users.AccountError, match="shorter than 15"):
        await users.vet_password("short", AUTH)

    assert ratings.RATINGS.started == before
