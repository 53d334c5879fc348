"""``users list --locked`` and ``--totp``: the admin's views of who is locked out now and
who has two-factor authentication on. Each filter is a statement of its own, so its test
runs on both databases; flags are combined, and the list made, in Python."""

from __future__ import annotations

import time
from typing import Any

import pytest
from quart import Quart
from quart.testing import QuartCliRunner

from tests.conftest import BOTH_DATABASES, add_user, aquery, invoke


async def names(runner: QuartCliRunner, *flags: str) -> tuple[list[str], str]:
    result = await invoke(runner, "users", "list", *flags)
    assert result.exit_code == 0, result.output
    return [line.split("\t")[0] for line in result.stdout.splitlines()], result.stderr


@pytest.fixture
async def three(app: Quart, settings: dict[str, Any]) -> None:
    """alice is locked out now, bob was (his window ended), carol has TOTP on and a
    pending key does not count for bob."""
    for name in ("alice", "bob", "carol"):
        await add_user(app, name)
    now = time.time()
    await aquery(
        settings,
        "INSERT INTO throttle_counters (scope, key, attempts, window_end, strikes) VALUES "
        f"('user', 'alice', 1000, {now + 600}, 1), ('user', 'bob', 1000, {now - 1}, 1), "
        f"('user', 'carol', 1, {now + 600}, 0), ('addr', 'carol', 1000, {now + 600}, 1)",
    )
    await aquery(
        settings,
        "INSERT INTO totp_factors (user_id, secret, created_at, confirmed_at, misses) "
        f"SELECT id, 'X', {now}, CASE WHEN username = 'carol' THEN {now} END, 0 FROM users "
        "WHERE username IN ('bob', 'carol')",
    )


@BOTH_DATABASES
async def test_locked_lists_only_names_locked_now(runner: QuartCliRunner, three: None) -> None:
    assert await names(runner, "--locked") == (["alice"], "")


@BOTH_DATABASES
async def test_totp_lists_only_users_with_totp_in_force(
    runner: QuartCliRunner, three: None
) -> None:
    assert await names(runner, "--totp") == (["carol"], "")


async def test_flags_together_must_all_hold(runner: QuartCliRunner, three: None) -> None:
    assert await names(runner, "--locked", "--totp") == ([], "no users match\n")


async def test_no_flag_lists_everyone(runner: QuartCliRunner, three: None) -> None:
    assert await names(runner) == (["alice", "bob", "carol"], "")
