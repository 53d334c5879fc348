"""Each account's security events (``security_events``): written by the audit from the
signals it subscribes to, once the request's response is made; pruned after
``RETENTION_DAYS``; deleted with the account; in the data export.

Rows are what is tested: one test of each statement (the insert, its from-select for a
command's events without an address, the prune, the delete with the account, the
export's read) runs on PostgreSQL too; which signal is stored as which kind is decided
in Python and runs on SQLite alone.
"""

from __future__ import annotations

import json
import time
from typing import Any

from blinker import Signal
from quart import Quart, Response, request
from quart.testing import QuartCliRunner

from quartapp import audit, signals
from quartapp.audit import events
from quartapp.auth import flows, prune
from quartapp.auth import settings as auth_settings
from quartapp.db import db
from tests.account.leaving import UA
from tests.conftest import (
    BOTH_DATABASES,
    AuthActions,
    add_user,
    aquery,
    body,
    both_databases_for,
    invoke,
)

DAY = 86400
ADDRESS = "192.0.2.9"
NEW_PASSWORD = "a brand new password, long enough"

# Every signal whose event is stored, with its other fields, and the kind stored.
STORED: list[tuple[Signal, dict[str, Any], str]] = [
    (signals.user_created, {}, "account_created"),
    (signals.user_logged_in, {"remember": False, "user_id": 1, "new_device": True}, "signed_in"),
    (signals.login_failed, {}, "sign_in_failed"),
    (signals.user_logged_out, {}, "signed_out"),
    (signals.session_ended, {"count": 1, "everywhere": False}, "session_ended"),
    (signals.session_ended, {"count": 2, "everywhere": True}, "sessions_ended"),
    (signals.password_changed, {"sessions_ended": 0}, "password_changed"),
    (signals.password_change_failed, {}, "password_change_failed"),
    (signals.reauthenticated, {"method": "password"}, "reauthenticated"),
    (signals.two_factor_enabled, {}, "two_factor_enabled"),
    (signals.two_factor_disabled, {"by": "user"}, "two_factor_disabled"),
    (signals.second_factor_failed, {"method": "totp", "step": "login"}, "second_factor_failed"),
    (signals.recovery_code_used, {"remaining": 9}, "recovery_code_used"),
    (signals.recovery_codes_renewed, {}, "recovery_codes_renewed"),
    (signals.passkey_added, {"name": "Laptop"}, "passkey_added"),
    (signals.passkey_removed, {"name": "Laptop"}, "passkey_removed"),
    (signals.passkey_renamed, {"old": "Laptop", "new": "Work"}, "passkey_renamed"),
    (signals.passkey_failed, {"reason": "unknown"}, "passkey_failed"),
    (signals.passkey_clone_refused, {"name": "Laptop"}, "passkey_clone_refused"),
    (signals.device_code_created, {}, "device_code_created"),
    (signals.device_trusted, {}, "device_trusted"),
]


async def send_in_a_request(app: Quart, signal: Signal, **fields: Any) -> None:
    """Send ``signal`` in a request of a Firefox on Linux at ADDRESS; make its response."""
    async with app.test_request_context("/", headers={"User-Agent": UA}):
        # What the server puts there; a test request has none.
        request.remote_addr = ADDRESS
        signals.send(signal, **fields)
        await app.process_response(Response("done"))


async def stored(settings: dict[str, Any]) -> list[tuple[Any, ...]]:
    return await aquery(
        settings,
        "SELECT u.username, e.kind, e.address, e.browser FROM security_events e "
        "JOIN users u ON u.id = e.user_id ORDER BY e.id",
    )


# Every kind is written by one INSERT ... SELECT, the kind a bound string: one kind on
# PostgreSQL covers the statement.
@both_databases_for(
    "signal, fields, kind", STORED, [k for _, _, k in STORED], postgres=["signed_in"]
)
async def test_each_signal_stores_its_event(
    app: Quart, settings: dict[str, Any], signal: Signal, fields: dict[str, Any], kind: str
) -> None:
    await add_user(app)
    await aquery(settings, "DELETE FROM security_events")

    await send_in_a_request(app, signal, username="alice", **fields)

    assert await stored(settings) == [("alice", kind, ADDRESS, "Firefox on Linux")]
    assert kind in events.TEXTS


def test_every_stored_kind_has_a_text() -> None:
    assert set(audit.STORED.values()) == set(events.TEXTS)


async def test_a_lockout_is_not_stored(app: Quart, settings: dict[str, Any]) -> None:
    await add_user(app)
    await aquery(settings, "DELETE FROM security_events")

    await send_in_a_request(app, signals.locked_out, username="alice", retry_after=60)

    assert await stored(settings) == []


async def test_a_name_that_is_no_account_stores_nothing(
    app: Quart, settings: dict[str, Any]
) -> None:
    await send_in_a_request(app, signals.login_failed, username="nobody")

    assert await aquery(settings, "SELECT count(*) FROM security_events") == [(0,)]


@BOTH_DATABASES
async def test_an_admins_commands_store_their_events_as_the_command_lines(
    auth: AuthActions, runner: QuartCliRunner, settings: dict[str, Any]
) -> None:
    await auth.login()
    await aquery(settings, "DELETE FROM security_events")

    for args, stdin in (
        (["users", "revoke-sessions", "alice"], None),
        (["users", "set-password", "alice", "--password-stdin"], NEW_PASSWORD + "\n"),
    ):
        result = await invoke(runner, *args, stdin=stdin)
        assert result.exit_code == 0, result.output

    assert await stored(settings) == [
        ("alice", "sessions_ended", None, events.COMMAND_LINE),
        ("alice", "password_changed", None, events.COMMAND_LINE),
    ]
    await auth.login(password=NEW_PASSWORD)
    page = await body(await auth.client.get("/account"))
    assert "Command line</span>" in page


async def test_a_real_sign_in_and_out_store_their_events(
    auth: AuthActions, settings: dict[str, Any]
) -> None:
    await auth.login("alice", "wrong password, quite long")
    await auth.login()
    await auth.logout()

    assert [kind for _, kind, _, _ in await stored(settings)] == [
        "sign_in_failed",
        "signed_in",
        "signed_out",
    ]


@BOTH_DATABASES
async def test_events_older_than_the_retention_are_pruned(
    app: Quart, auth: AuthActions, settings: dict[str, Any]
) -> None:
    await auth.login()
    now = time.time()
    old = now - (events.RETENTION_DAYS + 1) * DAY
    kept = now - (events.RETENTION_DAYS - 1) * DAY
    await aquery(settings, f"UPDATE security_events SET at = {old}")
    [(user_id,)] = await aquery(settings, "SELECT id FROM users")
    await aquery(
        settings,
        "INSERT INTO security_events (user_id, kind, at) "
        f"VALUES ({user_id}, 'signed_out', {kept})",
    )

    async with app.app_context():
        pruned = await prune.prune_all(db.store.sessionmaker, auth_settings.current())

    assert pruned["security_events"] == 1
    assert await aquery(settings, "SELECT kind FROM security_events") == [("signed_out",)]


@BOTH_DATABASES
async def test_deleting_the_account_deletes_its_events_only(
    app: Quart, auth: AuthActions, settings: dict[str, Any]
) -> None:
    await add_user(app, "bob")
    await AuthActions(app.test_client()).login("bob")
    await auth.login()
    [(alice_id,)] = await aquery(settings, "SELECT id FROM users WHERE username = 'alice'")

    async with app.app_context(), db.session() as dbs:
        await flows.delete_account(
            dbs, auth_settings.current(), user_id=alice_id, username="alice", by="admin"
        )

    assert [name for name, *_ in await stored(settings)] == ["bob"]


@BOTH_DATABASES
async def test_the_export_holds_the_accounts_events(
    app: Quart, auth: AuthActions, settings: dict[str, Any]
) -> None:
    await add_user(app, "bob")
    await AuthActions(app.test_client()).login("bob")
    await auth.login("alice", "wrong password, quite long")
    await auth.login()

    data = json.loads(await body(await auth.client.get("/account/export")))

    assert [(e["event"], e["description"]) for e in data["security_activity"]] == [
        ("sign_in_failed", "Wrong password given"),
        ("signed_in", "Signed in"),
    ]
    assert all(e["at"].endswith("+00:00") and e["address"] for e in data["security_activity"])
