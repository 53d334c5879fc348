"""Fuzzing the passkey endpoints: any body, any JSON, or a genuine answer with any field
replaced, gets a 4xx (or 200) in JSON, never a 5xx.

Every JSON endpoint (the options and answers of signing in, confirming and
registering) is sent bodies no page sends, signed in and not: nesting a thousand deep,
invalid UTF-8, UTF-16, duplicate keys, NaN, huge numbers, a body over the size limit.

Hypothesis drives one started app, as tests/web/test_fuzz.py does: ``@given`` cannot run an
``async def`` test, so the test makes its own event loop and runs each request on it.
Each example starts from a genuine assertion or registration of the software
authenticator (tests/support/passkey_authenticator.py) for a fresh challenge, so the broken
field is met deep in the checks; that test runs on both databases, as PostgreSQL refuses
some text (a NUL) that SQLite stores. Bodies no page sends are refused before any SQL.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from quart import Quart

from quartapp import create_app
from quartapp.web.json_body import MAX_DEPTH
from tests.conftest import (
    BOTH_DATABASES,
    AuthActions,
    add_user,
    csrf_token,
    settings_at_head,
)
from tests.passkeys.test_passkeys import (
    CONFIRM,
    CONFIRM_OPTIONS,
    LOGIN,
    LOGIN_OPTIONS,
    NEW,
    NEW_OPTIONS,
)
from tests.support.passkey_authenticator import SoftAuthenticator

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)
# What a broken field becomes: any JSON, or text close to what the field should hold.
VALUES = JSON | st.text(alphabet="ABCDabcd0123-_=+/!\x00\ud800", max_size=40)
TOP_FIELDS = ["id", "rawId", "type", "authenticatorAttachment", "response", "extra"]
RESPONSE_FIELDS = [
    "clientDataJSON",
    "authenticatorData",
    "signature",
    "userHandle",
    "attestationObject",
    "transports",
]
# (ceremony, where the field is, its name, its new value, or the whole body replaced)
EXAMPLES = st.tuples(
    st.sampled_from(["login", "confirm", "register"]),
    st.sampled_from(["top", "response", "body"]),
    st.sampled_from(TOP_FIELDS + RESPONSE_FIELDS),
    VALUES,
)
ENDPOINTS = [LOGIN_OPTIONS, LOGIN, CONFIRM_OPTIONS, CONFIRM, NEW_OPTIONS, NEW]
# Behind the login: an anonymous request is sent to the login page before its body is read.
SIGNED_IN_ONLY = {CONFIRM_OPTIONS, CONFIRM, NEW_OPTIONS, NEW}
# Bodies no page sends, each once a 500 or a trap for a recursive parser.
BAD_BODIES = {
    "nested-1000": b"[" * 1000,
    "nested-objects": b'{"a":' * (MAX_DEPTH + 1) + b"1" + b"}" * (MAX_DEPTH + 1),
    "invalid-utf8": b'{"credential": "\xff\xfe"}',
    "utf-16": '{"credential": {}}'.encode("utf-16"),
    "utf-16-le": '{"credential": {}}'.encode("utf-16-le"),
    "utf-32": '{"credential": {}}'.encode("utf-32"),
    "utf-8-bom": b'\xef\xbb\xbf{"credential": {}}',
    "duplicate-keys": b'{"credential": {}, "credential": {}}',
    "nan": b'{"remember": NaN}',
    "infinity": b'{"remember": -Infinity}',
    "huge-float": b'{"remember": 1e999}',
    "huge-int": b'{"remember": ' + b"9" * 5000 + b"}",
    "array": b"[]",
    "string": b'"credential"',
    "empty": b"",
    "over-the-size-limit": b'{"name": "' + b"x" * (64 * 1024) + b'"}',
}
RAW = st.tuples(
    st.sampled_from(ENDPOINTS),
    st.booleans(),
    st.sampled_from(list(BAD_BODIES.values()))
    | st.binary(max_size=64)
    | JSON.map(lambda value: json.dumps(value).encode()),
)


class Harness:
    """A started app with alice, her passkey, and two browsers: hers and a stranger's."""

    def __init__(self, app: Quart, loop: asyncio.AbstractEventLoop) -> None:
        self.app = app
        self.loop = loop
        self.key = SoftAuthenticator()
        self.alice = app.test_client()
        self.stranger = app.test_client()

    async def setup(self) -> None:
        await add_user(self.app)
        await AuthActions(self.alice).login()
        self.alice_token = await csrf_token(self.alice, NEW)
        self.stranger_token = await csrf_token(self.stranger)
        _, options = await self.post(self.alice, NEW_OPTIONS, {}, self.alice_token)
        credential = self.key.create(options["publicKey"])
        status, answer = await self.post(self.alice, NEW, {"credential": credential}, "")
        assert status == 200, answer

    async def post(
        self, client: Any, path: str, data: Any, token: str
    ) -> tuple[int, dict[str, Any]]:
        token = token or self.alice_token
        response = await client.post(path, json=data, headers={"X-CSRFToken": token})
        assert response.status_code < 500, (path, data)
        assert response.mimetype == "application/json", (path, data, response.status_code)
        return response.status_code, json.loads(await response.get_data(as_text=True))

    async def post_raw(
        self, path: str, signed_in: bool, data: bytes, content_type: str = "application/json"
    ) -> int:
        """POST ``data`` as it is: a 4xx (or 200) in JSON, or, anonymously behind the
        login, the way to the login page; never a 5xx. Returns the status."""
        client, token = (
            (self.alice, self.alice_token) if signed_in else (self.stranger, self.stranger_token)
        )
        headers = {"X-CSRFToken": token, "Content-Type": content_type}
        response = await client.post(path, data=data, headers=headers)
        status = response.status_code
        assert status < 500, (path, signed_in, data[:80])
        if not signed_in and path in SIGNED_IN_ONLY:
            assert status == 302, (path, data[:80])
            assert response.headers["Location"].startswith("/login?next=")
            return status
        assert response.mimetype == "application/json", (path, signed_in, data[:80], status)
        answer = json.loads(await response.get_data(as_text=True))
        if status >= 400:
            assert isinstance(answer.get("error"), str), (path, answer)
        return status

    async def attempt(self, ceremony: str, where: str, field: str, value: Any) -> None:
        if ceremony == "register":
            client, token, options_path, path = self.alice, self.alice_token, NEW_OPTIONS, NEW
        elif ceremony == "confirm":
            client, token, options_path, path = (
                self.alice,
                self.alice_token,
                CONFIRM_OPTIONS,
                CONFIRM,
            )
        else:
            client, token, options_path, path = (
                self.stranger,
                self.stranger_token,
                LOGIN_OPTIONS,
                LOGIN,
            )
        status, options = await self.post(client, options_path, {}, token)
        if status != 200:  # the limit of passkeys, reached by a registration that passed
            return
        if ceremony == "register":
            credential = SoftAuthenticator().create(options["publicKey"])
        else:
            credential = self.key.get(options["publicKey"])
        if where == "body":
            data = value
        elif where == "top":
            data = {"credential": {**credential, field: value}}
        else:
            response = {**credential["response"], field: value}
            data = {"credential": {**credential, "response": response}}
        status, _ = await self.post(client, path, data, token)
        if ceremony == "login" and status == 200:
            # A change that left the answer valid (an extra key): a new stranger, as a
            # login clears the session and its CSRF token.
            self.stranger = self.app.test_client()
            self.stranger_token = await csrf_token(self.stranger)


@pytest.fixture
def harness(tmp_path: Path, database: str) -> Iterator[Harness]:
    """A started app, on its own event loop: Hypothesis's ``@given`` runs no coroutine."""
    config = settings_at_head(
        tmp_path,
        database,
        LOGIN_FAILURES_PER_ADDRESS=1_000_000,
        LOGIN_FAILURES_PER_DEVICE=1_000_000,
        PASSKEYS_PER_USER_MAX=100,
    )
    app = create_app(config)
    loop = asyncio.new_event_loop()
    loop.run_until_complete(app.startup())
    try:
        harness = Harness(app, loop)
        loop.run_until_complete(harness.setup())
        yield harness
    finally:
        loop.run_until_complete(app.shutdown())
        loop.close()


FUZZ = settings(
    deadline=None,
    max_examples=150,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@BOTH_DATABASES
def test_broken_passkey_answers_get_4xx_json_never_a_5xx(harness: Harness) -> None:
    @FUZZ
    @given(example=EXAMPLES)
    def check(example: tuple[str, str, str, Any]) -> None:
        harness.loop.run_until_complete(harness.attempt(*example))

    check()


def test_any_body_to_any_json_endpoint_gets_4xx_json_never_a_5xx(harness: Harness) -> None:
    @FUZZ
    @given(example=RAW)
    def check(example: tuple[str, bool, bytes]) -> None:
        harness.loop.run_until_complete(harness.post_raw(*example))

    check()


@pytest.mark.parametrize("signed_in", [True, False], ids=["signed-in", "anonymous"])
@pytest.mark.parametrize("path", ENDPOINTS)
def test_every_json_endpoint_refuses_bodies_no_page_sends(
    harness: Harness, path: str, signed_in: bool
) -> None:
    """The reproduced 500s (1,000 nested brackets, invalid UTF-8, UTF-16) and their kin."""
    refused = 302 if path in SIGNED_IN_ONLY and not signed_in else None

    def status_of(data: bytes, content_type: str = "application/json") -> int:
        return harness.loop.run_until_complete(
            harness.post_raw(path, signed_in, data, content_type)
        )

    statuses = {name: status_of(data) for name, data in BAD_BODIES.items()}
    expected = {name: refused or 400 for name in BAD_BODIES}
    expected["over-the-size-limit"] = refused or 413
    assert statuses == expected
    for content_type in ("application/json; charset=utf-16", "text/plain"):
        assert status_of(b"{}", content_type) == (refused or 415), content_type
