"""The account signals: sent from the flows where things happen, with the app as sender."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from blinker import Signal
from quart import Quart

from quartapp import signals
from tests.conftest import PASSWORD, AuthActions, csrf_token

# Which signals are sent, and from where, is Python's: SQLite alone (the rule:
# tests/conftest.py). The counts they carry come from the flows' statements, which
# tests/auth/test_flows.py runs on PostgreSQL with the same announcement checked.

WRONG = "wrong password, quite long"
NEW_PASSWORD = "a brand new password, long enough"
ALL = {
    "user_logged_in": signals.user_logged_in,
    "login_failed": signals.login_failed,
    "locked_out": signals.locked_out,
    "user_logged_out": signals.user_logged_out,
    "session_ended": signals.session_ended,
    "password_changed": signals.password_changed,
}


@contextmanager
def recorded() -> Iterator[list[tuple[str, object, dict[str, Any]]]]:
    """Every signal sent meanwhile: its name, sender and keyword arguments."""
    sent: list[tuple[str, object, dict[str, Any]]] = []
    receivers = []
    for name, signal in ALL.items():

        def receive(sender: object, _name: str = name, **fields: Any) -> None:
            sent.append((_name, sender, fields))

        receivers.append(receive)  # blinker keeps weak references
        signal.connect(receive)
    try:
        yield sent
    finally:
        for signal, receive in zip(ALL.values(), receivers, strict=True):
            Signal.disconnect(signal, receive)


async def test_login_flow_sends_its_signals_from_the_app(app: Quart, auth: AuthActions) -> None:
    with recorded() as sent:
        await auth.login("alice", WRONG)
        await auth.login()
        await auth.logout()
        for _ in range(6):
            await auth.login("alice", WRONG)

    assert [(name, fields) for name, _, fields in sent] == [
        ("login_failed", {"username": "alice"}),
        (
            "user_logged_in",
            {"username": "alice", "remember": False, "user_id": 1, "new_device": True},
        ),
        ("user_logged_out", {"username": "alice"}),
        *[("login_failed", {"username": "alice"})] * 5,
        ("locked_out", {"username": "alice", "retry_after": sent[-1][2]["retry_after"]}),
    ]
    assert sent[-1][2]["retry_after"] > 0
    assert {sender for _, sender, _ in sent} == {app}


async def test_account_pages_send_password_changed_and_session_ended(
    app: Quart, auth: AuthActions
) -> None:
    other = AuthActions(app.test_client())
    await other.login()
    await auth.login()
    with recorded() as sent:
        await auth.client.post(
            "/account/sessions/end-others",
            form={"csrf_token": await csrf_token(auth.client, "/account/sessions")},
        )
        await other.login()
        token = await csrf_token(auth.client, "/account/password")
        await auth.client.post(
            "/account/password",
            form={
                "current_password": PASSWORD,
                "new_password": NEW_PASSWORD,
                "new_password2": NEW_PASSWORD,
                "csrf_token": token,
            },
        )

    names = [(name, fields) for name, _, fields in sent]
    assert ("session_ended", {"username": "alice", "count": 1, "everywhere": True}) in names
    assert ("password_changed", {"username": "alice", "sessions_ended": 1}) in names
