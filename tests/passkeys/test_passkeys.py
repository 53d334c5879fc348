"""Passkeys end to end through the app (quartapp.passkeys), with a software authenticator.

Every response the app checks is genuine: tests/support/passkey_authenticator.py makes real
keys, CBOR and signatures, and py_webauthn verifies them in full. A test gets one
thing wrong on purpose and expects a clear 4xx in JSON, with nothing logged in or
stored. The tests about the passkeys, challenges, logins and throttle that live in the
database run on both databases (marked, the rule: tests/conftest.py).
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import pytest
from quart import Quart

from quartapp.passkeys.ceremony import CHALLENGE_LIFETIME
from quartapp.passkeys.store import CHALLENGES_PER_USER
from tests.conftest import (
    BOTH_DATABASES,
    AuthActions,
    aquery,
    body,
    cookie_value,
    csrf_token,
    replay,
)
from tests.support.passkey_authenticator import SoftAuthenticator, b64

if TYPE_CHECKING:
    from quart.typing import TestClientProtocol


NEW = "/account/passkeys/new"
NEW_OPTIONS = "/account/passkeys/new/options"
LOGIN = "/login/passkey"
LOGIN_OPTIONS = "/login/passkey/options"
CONFIRM = "/login/confirm/passkey"
CONFIRM_OPTIONS = "/login/confirm/passkey/options"


async def post_json(
    client: TestClientProtocol, path: str, data: Any, token: str
) -> tuple[int, dict[str, Any]]:
    """POST ``data`` as JSON with the CSRF header, as static/passkeys.js does."""
    response = await client.post(path, json=data, headers={"X-CSRFToken": token})
    text = await body(response)
    assert response.mimetype == "application/json", text
    return response.status_code, json.loads(text)


async def register(
    client: TestClientProtocol, key: SoftAuthenticator, name: str = "", **wrong: Any
) -> tuple[int, dict[str, Any]]:
    """Add ``key`` as a passkey of the logged-in user, as the "Add a passkey" page does."""
    token = await csrf_token(client, NEW)
    status, options = await post_json(client, NEW_OPTIONS, {}, token)
    assert status == 200, options
    credential = key.create(options["publicKey"], **wrong)
    return await post_json(client, NEW, {"credential": credential, "name": name}, token)


async def login_options(client: TestClientProtocol) -> tuple[str, dict[str, Any]]:
    token = await csrf_token(client, "/login")
    status, options = await post_json(client, LOGIN_OPTIONS, {}, token)
    assert status == 200, options
    return token, options["publicKey"]


async def sign_in(
    client: TestClientProtocol, key: SoftAuthenticator, path: str = LOGIN, **wrong: Any
) -> tuple[int, dict[str, Any]]:
    """Sign in with ``key`` alone, as the login page's button does."""
    token, options = await login_options(client)
    return await post_json(client, path, {"credential": key.get(options, **wrong)}, token)


async def signed_in_as(client: TestClientProtocol) -> str | None:
    page = await body(await client.get("/account/sessions"))
    start = page.find("Signed in as <strong>")
    if start < 0:
        return None
    return page[start + len("Signed in as <strong>") :].split("<", 1)[0]


def audit_events(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [json.loads(r.getMessage()) for r in caplog.records if r.name == "quartapp.audit"]


@pytest.fixture
async def alice_key(auth: AuthActions, client: TestClientProtocol) -> SoftAuthenticator:
    """alice has one passkey and is logged out."""
    key = SoftAuthenticator()
    await auth.login()
    status, answer = await register(client, key, "Laptop")
    assert (status, answer) == (200, {"redirect": "/account/passkeys"})
    await auth.logout()
    return key


@BOTH_DATABASES
async def test_a_passkey_is_added_then_signs_in_alone(
    auth: AuthActions,
    client: TestClientProtocol,
    settings: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="quartapp.audit")
    key = SoftAuthenticator()
    await auth.login()
    page = await body(await client.get("/account/passkeys"))
    assert "You have no passkeys yet." in page
    assert "of at most" not in page  # not "0 of at most 20" beside "no passkeys yet"
    assert '<a class="button-primary" href="/account/passkeys/new">Add a passkey</a>' in page

    assert await register(client, key, "  Work   laptop ") == (
        200,
        {"redirect": "/account/passkeys"},
    )
    page = await body(await client.get("/account/passkeys"))
    assert "Your passkey “Work laptop” was added." in page
    assert '<h2 class="session-title">Work laptop</h2>' in page
    assert "<dt>Last used</dt><dd>Never</dd>" in page
    [(stored_id, count)] = await aquery(settings, "SELECT credential_id, sign_count FROM passkeys")
    assert (stored_id, count) == (key.id, 0)

    await auth.logout()
    status, answer = await sign_in(client, key)
    assert (status, answer) == (200, {"redirect": "/hello"})
    hello = await body(await client.get("/hello"))
    assert "You were signed in as alice." in hello
    assert await signed_in_as(client) == "alice"
    assert await aquery(settings, "SELECT method FROM logins") == [("passkey",)]
    assert await aquery(settings, "SELECT sign_count FROM passkeys") == [(1,)]
    sessions = await body(await client.get("/account/sessions"))
    assert '<dd class="session-method">Passkey</dd>' in sessions
    assert "Last used</dt><dd><time" in await body(await client.get("/account/passkeys"))
    events = [event["event"] for event in audit_events(caplog)]
    assert "passkey_added" in events
    assert events[-2:] == ["login_ok", "passkey_login_ok"]


async def test_a_passkey_sign_in_honours_next_and_remember(
    alice_key: SoftAuthenticator, client: TestClientProtocol, settings: dict[str, Any]
) -> None:
    token, options = await login_options(client)
    credential = alice_key.get(options)
    status, answer = await post_json(
        client,
        f"{LOGIN}?next=/account/passkeys",
        {"credential": credential, "remember": True},
        token,
    )
    assert (status, answer) == (200, {"redirect": "/account/passkeys"})
    assert await aquery(settings, "SELECT remember FROM logins") == [(True,)]


async def test_options_ask_for_discoverable_verified_passkeys(
    auth: AuthActions, client: TestClientProtocol
) -> None:
    await auth.login()
    key = SoftAuthenticator()
    await register(client, key)
    token = await csrf_token(client, NEW)
    status, answer = await post_json(client, NEW_OPTIONS, {}, token)
    assert status == 200
    creation = answer["publicKey"]
    assert creation["rp"]["id"] == "localhost"
    assert creation["authenticatorSelection"]["residentKey"] == "required"
    assert creation["authenticatorSelection"]["userVerification"] == "required"
    assert [entry["id"] for entry in creation["excludeCredentials"]] == [key.id]
    assert creation["user"]["name"] == "alice"
    assert creation["user"]["id"] != "alice"

    await auth.logout()
    _, request = await login_options(client)
    assert request["allowCredentials"] == []
    assert request["userVerification"] == "required"
    assert request["rpId"] == "localhost"


@pytest.mark.parametrize(
    ("wrong", "reason"),
    [
        ({"origin": "http://evil.example"}, "origin"),
        ({"origin": "https://localhost"}, "origin"),
        ({"rp_id": "evil.example"}, "RP ID"),
        ({"verified": False}, "user verification"),
        ({"cross_origin": True}, "made in another site's frame"),
    ],
)
async def test_a_registration_from_elsewhere_or_unverified_is_refused(
    auth: AuthActions,
    client: TestClientProtocol,
    settings: dict[str, Any],
    wrong: dict[str, Any],
    reason: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="quartapp.audit")
    await auth.login()
    status, answer = await register(client, SoftAuthenticator(), **wrong)
    assert status == 400, reason
    assert answer == {"error": "The passkey could not be verified. Please try again."}
    assert await aquery(settings, "SELECT count(*) FROM passkeys") == [(0,)]
    # The refusal is an audit line too, with why the ceremony failed.
    failed = [e for e in audit_events(caplog) if e["event"] == "passkey_registration_failed"]
    assert [(e["user"], bool(e["reason"])) for e in failed] == [("alice", True)]


@pytest.mark.parametrize(
    ("wrong", "reason"),
    [
        ({"origin": "http://evil.example"}, "origin"),
        ({"origin": "http://localhost:8000"}, "origin with another port"),
        ({"rp_id": "evil.example"}, "RP ID"),
        ({"verified": False}, "user verification"),
        ({"bad_signature": True}, "signature"),
        ({"cross_origin": True}, "made in another site's frame"),
    ],
)
async def test_a_bad_assertion_is_refused_and_logs_no_one_in(
    alice_key: SoftAuthenticator,
    client: TestClientProtocol,
    settings: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
    wrong: dict[str, Any],
    reason: str,
) -> None:
    caplog.set_level(logging.INFO, logger="quartapp.audit")
    status, answer = await sign_in(client, alice_key, **wrong)
    assert status == 400, reason
    assert answer == {"error": "The passkey could not be verified. Please try again."}
    assert await signed_in_as(client) is None
    assert await aquery(settings, "SELECT count(*) FROM logins") == [(0,)]
    assert audit_events(caplog)[-1]["event"] == "passkey_login_failed"
    assert audit_events(caplog)[-1]["user"] == "alice"


@BOTH_DATABASES
async def test_a_challenge_works_once_and_for_five_minutes(
    app: Quart,
    alice_key: SoftAuthenticator,
    client: TestClientProtocol,
    settings: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    expired = "That sign-in request expired or was used already. Please try again."
    token, options = await login_options(client)
    later = time.time() + CHALLENGE_LIFETIME + 1
    with monkeypatch.context() as patch:
        patch.setattr("quartapp.passkeys.signin.time", SimpleNamespace(time=lambda: later))
        status, answer = await post_json(
            client, LOGIN, {"credential": alice_key.get(options)}, token
        )
    assert (status, answer) == (400, {"error": expired})
    assert await aquery(settings, "SELECT count(*) FROM passkey_challenges") == [(0,)]

    before_token, options = await login_options(client)
    before_answer = cookie_value(client)
    credential = alice_key.get(options)
    assert (await post_json(client, LOGIN, {"credential": credential}, before_token))[0] == 200
    # Its use is recorded: a row, written only now that a signature verified.
    assert await aquery(settings, "SELECT purpose FROM passkey_challenges") == [("login",)]
    await AuthActions(client).logout()
    token = await csrf_token(client)
    # The same signed answer again: a replay, from the browser whose challenge it was...
    assert await post_json(client, LOGIN, {"credential": credential}, token) == (
        400,
        {"error": expired},
    )
    # ...and with a copy of its session cookie from before the answer, which still
    # holds the challenge.
    copied = replay(app, before_answer)
    assert await post_json(copied, LOGIN, {"credential": credential}, before_token) == (
        400,
        {"error": expired},
    )
    assert await signed_in_as(copied) is None
    # A challenge made for another ceremony does not serve a sign-in.
    await AuthActions(client).login()
    token = await csrf_token(client, NEW)
    _, creation = await post_json(client, NEW_OPTIONS, {}, token)
    await AuthActions(client).logout()
    token = await csrf_token(client)
    forged = alice_key.get({"challenge": creation["publicKey"]["challenge"], "rpId": "localhost"})
    assert await post_json(client, LOGIN, {"credential": forged}, token) == (
        400,
        {"error": expired},
    )


@BOTH_DATABASES
async def test_an_answer_uses_up_every_challenge_the_browser_holds(
    alice_key: SoftAuthenticator, client: TestClientProtocol
) -> None:
    """Two tabs each ask for options; the first answer, even a wrong one, ends both."""
    token, first = await login_options(client)
    _, second = await login_options(client)
    wrong = alice_key.get(first, origin="http://evil.example")
    assert (await post_json(client, LOGIN, {"credential": wrong}, token))[0] == 400
    status, answer = await post_json(client, LOGIN, {"credential": alice_key.get(second)}, token)
    assert (status, answer["error"]) == (
        400,
        "That sign-in request expired or was used already. Please try again.",
    )


@BOTH_DATABASES
async def test_a_crowd_on_one_address_leaves_the_next_person_a_sign_in(
    app: Quart,
    alice_key: SoftAuthenticator,
    client: TestClientProtocol,
    settings: dict[str, Any],
) -> None:
    """One client asking for options in a loop, and a crowd viewing the login page, all
    from one address, write nothing and leave the next person there a sign-in."""
    greedy = app.test_client()
    token = await csrf_token(greedy, "/login")
    statuses = [(await post_json(greedy, LOGIN_OPTIONS, {}, token))[0] for _ in range(40)]
    assert statuses == [200] * 40
    for _ in range(32):
        assert (await app.test_client().get("/login")).status_code == 200
    assert await aquery(settings, "SELECT count(*) FROM passkey_challenges") == [(0,)]

    status, answer = await sign_in(client, alice_key)
    assert (status, answer) == (200, {"redirect": "/hello"})
    assert await signed_in_as(client) == "alice"


@BOTH_DATABASES
async def test_a_user_holds_at_most_a_few_challenges_of_each_kind(
    alice_key: SoftAuthenticator,
    auth: AuthActions,
    client: TestClientProtocol,
    settings: dict[str, Any],
) -> None:
    """Asking for options again ends the oldest: the first of six no longer answers."""
    await auth.login()
    token = await csrf_token(client, "/login/confirm")
    made = [(await post_json(client, CONFIRM_OPTIONS, {}, token))[1] for _ in range(6)]
    rows = await aquery(
        settings, "SELECT count(*) FROM passkey_challenges WHERE purpose = 'confirm'"
    )
    assert rows == [(CHALLENGES_PER_USER,)]
    oldest = alice_key.get(made[0]["publicKey"])
    status, answer = await post_json(client, CONFIRM, {"credential": oldest}, token)
    assert (status, answer) == (
        400,
        {"error": "That request expired or was used already. Please try again."},
    )
    newest = alice_key.get(made[-1]["publicKey"])
    status, answer = await post_json(client, CONFIRM, {"credential": newest}, token)
    assert (status, answer) == (200, {"redirect": "/account"})


@BOTH_DATABASES
@pytest.mark.parametrize("path", [CONFIRM_OPTIONS, NEW_OPTIONS])
async def test_options_asked_for_all_at_once_hold_a_few_rows(
    alice_key: SoftAuthenticator,
    auth: AuthActions,
    client: TestClientProtocol,
    settings: dict[str, Any],
    path: str,
) -> None:
    await auth.login()
    token = await csrf_token(client, NEW)
    answers = await asyncio.gather(*(post_json(client, path, {}, token) for _ in range(30)))
    assert {status for status, _ in answers} == {200}
    [(held,)] = await aquery(settings, "SELECT count(*) FROM passkey_challenges")
    assert held == CHALLENGES_PER_USER


async def test_an_unknown_passkey_is_refused(
    auth: AuthActions, client: TestClientProtocol, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="quartapp.audit")
    status, answer = await sign_in(client, SoftAuthenticator())
    assert status == 400
    assert "not registered here" in answer["error"]
    event = audit_events(caplog)[-1]
    assert (event["event"], event["user"]) == ("passkey_login_failed", None)
    assert event["reason"] == "unknown passkey"


@BOTH_DATABASES
async def test_a_signature_count_that_does_not_go_up_is_a_clone(
    alice_key: SoftAuthenticator,
    client: TestClientProtocol,
    settings: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="quartapp.audit")
    assert (await sign_in(client, alice_key, step=5))[0] == 200
    await AuthActions(client).logout()
    # A copy of the key that has signed fewer times than the original.
    alice_key.sign_count = 2
    status, answer = await sign_in(client, alice_key)
    assert status == 400
    assert answer["error"].startswith("This passkey was refused: it may have been copied.")
    assert await signed_in_as(client) is None
    assert await aquery(settings, "SELECT sign_count FROM passkeys") == [(5,)]
    clone = [e for e in audit_events(caplog) if e["event"] == "passkey_clone_refused"]
    assert [{k: v for k, v in e.items() if k != "addr"} for e in clone] == [
        {
            "event": "passkey_clone_refused",
            "user": "alice",
            "passkey": "Laptop",
            "stored": 5,
            "received": 3,
        }
    ]


async def test_an_authenticator_without_a_counter_signs_in_every_time(
    alice_key: SoftAuthenticator, client: TestClientProtocol
) -> None:
    for _ in range(2):
        assert (await sign_in(client, alice_key, step=0))[0] == 200
        await AuthActions(client).logout()


@pytest.mark.parametrize(
    ("send", "status"),
    [
        ({"data": "not json", "headers": {"Content-Type": "text/plain"}}, 415),
        ({"data": "{not json", "headers": {"Content-Type": "application/json"}}, 400),
        ({"json": ["a", "list"]}, 400),
        ({"json": {"credential": "a string"}}, 400),
        ({"json": {"credential": {"id": 5}}}, 400),
        ({"json": {"credential": {"id": "x", "rawId": "x", "type": "public-key"}}}, 400),
        ({"json": {"credential": None, "remember": "yes"}}, 400),
    ],
)
async def test_malformed_sign_ins_are_4xx_json(
    auth: AuthActions, client: TestClientProtocol, send: dict[str, Any], status: int
) -> None:
    token = await csrf_token(client)
    send = dict(send)  # parametrize shares the dict between the two databases' runs
    headers = {"X-CSRFToken": token, **send.pop("headers", {})}
    response = await client.post(LOGIN, headers=headers, **send)
    assert response.status_code == status
    assert response.mimetype == "application/json"
    assert "error" in json.loads(await body(response))


async def test_malformed_fields_inside_a_real_assertion_are_4xx(
    alice_key: SoftAuthenticator, client: TestClientProtocol
) -> None:
    token, options = await login_options(client)
    credential = alice_key.get(options)
    for field, value in [
        ("clientDataJSON", "!!not base64!!"),
        ("clientDataJSON", "bm90IGpzb24"),  # "not json"
        ("authenticatorData", "AAAA"),
        ("signature", 7),
        ("userHandle", 7),
    ]:
        broken = {**credential, "response": {**credential["response"], field: value}}
        status, answer = await post_json(client, LOGIN, {"credential": broken}, token)
        assert 400 <= status < 500, (field, answer)
    # Ids that are not rawId's base64url (PostgreSQL refuses a NUL in text).
    for wrong_id in ("\u0000", alice_key.id + "A", "x" * 2000):
        broken = {**credential, "id": wrong_id}
        status, answer = await post_json(client, LOGIN, {"credential": broken}, token)
        assert status == 400, (wrong_id, answer)


@pytest.mark.parametrize(
    "name", [7, ["a"], "x" * 65, "bad\x00name", "bad\x7fname", "\ud800", "a\ufffdb"]
)
async def test_a_new_passkeys_name_is_plain_text(
    auth: AuthActions, client: TestClientProtocol, settings: dict[str, Any], name: Any
) -> None:
    await auth.login()
    token = await csrf_token(client, NEW)
    _, options = await post_json(client, NEW_OPTIONS, {}, token)
    credential = SoftAuthenticator().create(options["publicKey"])
    status, answer = await post_json(client, NEW, {"credential": credential, "name": name}, token)
    assert status == 400, answer
    assert await aquery(settings, "SELECT count(*) FROM passkeys") == [(0,)]


@BOTH_DATABASES
async def test_a_registration_is_stored_under_the_attested_credential_id(
    auth: AuthActions, client: TestClientProtocol, settings: dict[str, Any]
) -> None:
    """A client naming another credential than the one attested is refused."""
    await auth.login()
    token = await csrf_token(client, NEW)
    _, options = await post_json(client, NEW_OPTIONS, {}, token)
    credential = SoftAuthenticator().create(options["publicKey"])
    other = b64(secrets.token_bytes(32))
    credential = {**credential, "id": other, "rawId": other}
    status, answer = await post_json(client, NEW, {"credential": credential}, token)
    assert (status, answer) == (
        400,
        {"error": "The passkey could not be verified. Please try again."},
    )
    assert await aquery(settings, "SELECT count(*) FROM passkeys") == [(0,)]
