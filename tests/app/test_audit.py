"""The audit log: one JSON line per auth event, with user and address, never a password."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
from pathlib import Path
from typing import Any

import pytest
from quart import Quart
from quart.testing import QuartCliRunner

from quartapp import audit, create_app, signals
from tests.conftest import BOTH_DATABASES, PASSWORD, AuthActions, settings_at_head

# The tests marked BOTH_DATABASES are those whose outcome can depend on the database
# (the rule: tests/conftest.py); the rest run on SQLite alone.

WRONG = "wrong password, quite long"
NEW_PASSWORD = "a brand new password, long enough"


def audit_events(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [json.loads(r.getMessage()) for r in caplog.records if r.name == "quartapp.audit"]


async def test_web_events_are_logged_with_user_and_address(
    auth: AuthActions, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="quartapp.audit")

    await auth.login("alice", WRONG)
    await auth.login()
    await auth.logout()
    for _ in range(6):
        await auth.login("alice", WRONG)

    events = audit_events(caplog)
    assert [e["event"] for e in events] == [
        "login_failed",
        "login_ok",
        "logout",
        *["login_failed"] * 5,
        "lockout",
    ]
    assert {e["user"] for e in events} == {"alice"}
    # Quart's test client reports its peer as "<local>"; the server test sees 127.0.0.1.
    assert {e["addr"] for e in events} == {"<local>"}


async def test_cli_events_are_logged(
    auth: AuthActions, runner: QuartCliRunner, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="quartapp.audit")
    await auth.login()

    for args, stdin in (
        (["users", "revoke-sessions", "alice"], None),
        (["users", "set-password", "alice", "--password-stdin"], NEW_PASSWORD + "\n"),
    ):
        result = await asyncio.to_thread(runner.invoke, args=args, input=stdin)
        assert result.exit_code == 0, result.output

    events = audit_events(caplog)
    assert [(e["event"], e["user"], e["addr"]) for e in events[-2:]] == [
        ("sessions_revoked", "alice", "cli"),
        ("password_changed", "alice", "cli"),
    ]


async def test_no_log_line_contains_a_password(
    auth: AuthActions, runner: QuartCliRunner, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)

    await auth.login("alice", WRONG)
    await auth.login()
    await auth.logout()
    await asyncio.to_thread(
        runner.invoke,
        args=["users", "set-password", "alice", "--password-stdin"],
        input=NEW_PASSWORD + "\n",
    )

    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "login_ok" in text
    for secret in (PASSWORD, WRONG, NEW_PASSWORD):
        assert secret not in text


HASHED = re.compile(r"sha256:[0-9a-f]{12}")


async def failed_login_user(app: Quart, caplog: pytest.LogCaptureFixture, typed: str) -> object:
    """The ``user`` the audit log records for a failed login typed as ``typed``."""
    caplog.set_level(logging.INFO, logger="quartapp.audit")
    caplog.clear()
    await AuthActions(app.test_client()).login(typed, WRONG)
    (event,) = audit_events(caplog)
    assert event["event"] == "login_failed"
    return event["user"]


@pytest.mark.parametrize(
    "typed",
    [
        pytest.param(PASSWORD, id="password-with-spaces"),
        pytest.param("Tr0ub4dor&3", id="symbol"),
        pytest.param("-hunter2", id="leading-hyphen"),
        pytest.param("pässwort", id="non-ascii"),
    ],
)
async def test_typed_name_that_is_no_username_is_logged_as_a_keyed_hash(
    app: Quart, caplog: pytest.LogCaptureFixture, typed: str
) -> None:
    user = await failed_login_user(app, caplog, typed)

    assert isinstance(user, str)
    assert HASHED.fullmatch(user)
    assert typed.lower() not in "\n".join(r.getMessage() for r in caplog.records)
    # Not the plain hash a password dictionary could be checked against.
    assert user.removeprefix("sha256:") not in hashlib.sha256(typed.encode()).hexdigest()


async def test_same_typo_gives_the_same_hash_and_another_typo_another(
    app: Quart, caplog: pytest.LogCaptureFixture
) -> None:
    first = await failed_login_user(app, caplog, "my secret pass")
    again = await failed_login_user(app, caplog, "my secret pass")
    other = await failed_login_user(app, caplog, "my secret pasz")

    assert first == again != other


async def test_hash_depends_on_the_secret_key(
    tmp_path: Path, database: str, caplog: pytest.LogCaptureFixture
) -> None:
    hashes = []
    for number, key in enumerate(["k" * 43, "q" * 43]):
        # Two apps on one database, one after the other, each with its own key.
        app = create_app(settings_at_head(tmp_path / str(number), database, SECRET_KEY=key))
        async with app.test_app():
            hashes.append(await failed_login_user(app, caplog, "my secret pass"))

    assert hashes[0] != hashes[1]


@BOTH_DATABASES
async def test_username_is_logged_in_its_stored_form(
    app: Quart, caplog: pytest.LogCaptureFixture
) -> None:
    assert await failed_login_user(app, caplog, "Bob.Smith@Example.org") == "bob.smith@example.org"


async def test_username_over_the_configured_length_is_hashed(
    tmp_path: Path, database: str, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(settings_at_head(tmp_path, database, USERNAME_MAX_LENGTH=10))
    async with app.test_app():
        fits = await failed_login_user(app, caplog, "a" * 10)
        # The login form refuses a longer name before any check; other callers (the
        # CLI, a future form) must still not log it as typed.
        async with app.app_context():
            too_long = audit.loggable_username("a" * 11)

    assert fits == "a" * 10
    assert isinstance(too_long, str)
    assert HASHED.fullmatch(too_long)


def test_audit_log_subscribes_to_the_six_account_signals(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Each account signal, sent with no view or app around it, makes its audit line."""
    caplog.set_level(logging.INFO, logger="quartapp.audit")
    signals.send(signals.user_logged_in, username="alice", remember=True)
    signals.send(signals.login_failed, username="alice")
    signals.send(signals.locked_out, username="alice", retry_after=60)
    signals.send(signals.user_logged_out, username="alice")
    signals.send(signals.session_ended, username="alice", count=1, everywhere=False)
    signals.send(signals.session_ended, username="alice", count=3, everywhere=True)
    signals.send(signals.password_changed, username="alice", sessions_ended=2)

    assert audit_events(caplog) == [
        {"event": "login_ok", "user": "alice", "addr": "cli", "remember": True},
        {"event": "login_failed", "user": "alice", "addr": "cli"},
        {"event": "lockout", "user": "alice", "addr": "cli", "retry_after": 60},
        {"event": "logout", "user": "alice", "addr": "cli"},
        {"event": "session_ended", "user": "alice", "addr": "cli"},
        {"event": "sessions_revoked", "user": "alice", "addr": "cli", "sessions_ended": 3},
        {"event": "password_changed", "user": "alice", "addr": "cli", "sessions_ended": 2},
    ]
