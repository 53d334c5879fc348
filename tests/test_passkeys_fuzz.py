"""Fuzzing the passkey endpoints: any JSON, or a genuine answer with any field replaced,
gets a 4xx (or 200) in JSON, never a 5xx.

Hypothesis drives one started app, as tests/test_fuzz.py does: ``@given`` cannot run an
``async def`` test, so the test makes its own event loop and runs each request on it.
Each example starts from a genuine assertion or registration of the software
authenticator (tests/passkey_authenticator.py) for a fresh challenge, so the broken
field is met deep in the checks, and runs on both databases: PostgreSQL refuses some
text (a NUL) that SQLite stores.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from quart import Quart

from quartapp import create_app

from .conftest import AuthActions, add_user, csrf_token, make_settings
from .passkey_authenticator import SoftAuthenticator
from .test_passkeys import CONFIRM, CONFIRM_OPTIONS, LOGIN, LOGIN_OPTIONS, NEW, NEW_OPTIONS

pytestmark = pytest.mark.both_databases

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


def test_broken_passkey_answers_get_4xx_json_never_a_5xx(tmp_path: Path, database: str) -> None:
    config = make_settings(
        tmp_path,
        DATABASE_URL=database,
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

        @settings(
            deadline=None,
            max_examples=150,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        )
        @given(example=EXAMPLES)
        def check(example: tuple[str, str, str, Any]) -> None:
            loop.run_until_complete(harness.attempt(*example))

        check()
    finally:
        loop.run_until_complete(app.shutdown())
        loop.close()
