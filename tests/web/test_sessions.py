"""Tests for the session cookie: what a logged-in client is sent, page after page."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from itsdangerous import BadSignature, URLSafeTimedSerializer
from quart import Quart
from quart.sessions import session_json_serializer
from quart.wrappers import Response

from quartapp import create_app
from tests.conftest import (
    TEST_SECRET_KEY,
    AuthActions,
    add_user,
    cookie_value,
    csrf_token,
    replay,
    settings_at_head,
)

if TYPE_CHECKING:
    # Only for annotations: a Test* class at module level would be collected by pytest.
    from quart.typing import TestClientProtocol


async def test_login_response_carries_the_logout_forms_csrf_token(auth: AuthActions) -> None:
    await auth.login()
    async with auth.client.session_transaction() as session:
        assert "csrf_token" in session


async def test_logged_in_pages_send_no_new_session_cookie(auth: AuthActions) -> None:
    await auth.login()
    # The first page shows (and so takes out of the cookie) the login's flash.
    await auth.client.get("/hello")

    for path in ("/hello", "/", "/hello"):
        response = await auth.client.get(path)
        assert response.status_code == 200
        assert "Set-Cookie" not in response.headers


async def test_logout_form_token_from_a_logged_in_page_logs_out(
    auth: AuthActions, client: TestClientProtocol
) -> None:
    await auth.login()
    token = await csrf_token(client, "/hello")

    response = await client.post("/logout", form={"csrf_token": token})

    assert response.status_code == 302
    assert (await client.get("/hello")).status_code == 302


ROTATED_KEY = "rotated-key-0123456789abcdefghijklmnopqrstuv"


def set_session_cookie(response: Response) -> str | None:
    """The session cookie's value in a response's Set-Cookie, if it sends one."""
    for header in response.headers.getlist("Set-Cookie"):
        name, _, rest = header.partition("=")
        if name == "session":
            return rest.split(";", 1)[0]
    return None


def verifies_under(key: str, value: str) -> bool:
    """Whether ``value`` is a session cookie signed with ``key`` alone."""
    signer = URLSafeTimedSerializer(
        key,
        salt="cookie-session",
        serializer=session_json_serializer,
        signer_kwargs={"key_derivation": "hmac", "digest_method": hashlib.sha1},
    )
    try:
        signer.loads(value)
    except BadSignature:
        return False
    return True


async def logged_in_cookie(tmp_path: Path, database: str, *, remember: bool) -> str:
    """A login's session cookie, signed with the test key (the one about to be rotated)."""
    old = create_app(settings_at_head(tmp_path, database))
    async with old.test_app():
        await add_user(old)
        auth = AuthActions(old.test_client())
        await auth.login(remember=remember)
        # The first page takes the login's flash out, which changes the cookie anyway.
        await auth.client.get("/hello")
        return cookie_value(auth.client)


@pytest.mark.parametrize("remember", [False, True], ids=["session", "remember-me"])
async def test_cookie_signed_with_a_fallback_key_is_resigned_with_the_new_key(
    tmp_path: Path, database: str, remember: bool
) -> None:
    issued = await logged_in_cookie(tmp_path, database, remember=remember)
    new = create_app(
        settings_at_head(
            tmp_path, database, SECRET_KEY=ROTATED_KEY, SECRET_KEY_FALLBACKS=[TEST_SECRET_KEY]
        )
    )
    async with new.test_app():
        client = replay(new, issued)
        response = await client.get("/hello")
        resigned = set_session_cookie(response)
        again = await client.get("/hello")

    assert response.status_code == 200
    assert resigned is not None
    assert verifies_under(ROTATED_KEY, resigned)
    assert not verifies_under(TEST_SECRET_KEY, resigned)
    # Once re-signed, the cookie is on the new key and left alone on ordinary pages
    # (unless "remember me" refreshes it anyway, as Quart does on every response).
    assert again.status_code == 200
    assert (set_session_cookie(again) is not None) is remember


async def test_cookie_on_the_current_key_is_not_resent_while_fallbacks_are_set(
    tmp_path: Path, database: str
) -> None:
    issued = await logged_in_cookie(tmp_path, database, remember=False)
    app = create_app(
        settings_at_head(tmp_path, database, SECRET_KEY_FALLBACKS=["an-older-key-" + "x" * 30])
    )
    async with app.test_app():
        client = replay(app, issued)
        await client.get("/hello")  # takes the login's flash out of the cookie
        response = await client.get("/hello")

    assert response.status_code == 200
    assert set_session_cookie(response) is None


async def test_cookie_signed_with_a_dropped_key_is_not_accepted(
    tmp_path: Path, database: str
) -> None:
    issued = await logged_in_cookie(tmp_path, database, remember=False)
    app = create_app(
        settings_at_head(
            tmp_path, database, SECRET_KEY=ROTATED_KEY, SECRET_KEY_FALLBACKS=["x" * 43]
        )
    )
    async with app.test_app():
        response = await replay(app, issued).get("/hello")

    assert response.status_code == 302


async def test_a_remembered_cookie_is_refused_once_the_key_is_no_longer_current(
    app: Quart, auth: AuthActions
) -> None:
    await auth.login()
    await auth.client.get("/hello")  # takes the login's flash out of the cookie
    assert (await auth.client.get("/hello")).status_code == 200  # now remembered
    issued = cookie_value(auth.client)

    app.config["SECRET_KEY"] = ROTATED_KEY

    assert (await replay(app, issued).get("/hello")).status_code == 302


async def test_an_altered_copy_of_a_remembered_cookie_is_refused(
    app: Quart, auth: AuthActions
) -> None:
    await auth.login()
    await auth.client.get("/hello")
    assert (await auth.client.get("/hello")).status_code == 200
    issued = cookie_value(auth.client)
    # A character of the payload: the signature's last one has bits base64 ignores.
    altered = issued[:5] + ("A" if issued[5] != "A" else "B") + issued[6:]

    assert (await replay(app, altered).get("/hello")).status_code == 302
    assert (await replay(app, issued).get("/hello")).status_code == 200


async def test_pages_of_one_session_reuse_its_signed_csrf_token_and_others_do_not(
    app: Quart, auth: AuthActions
) -> None:
    await auth.login()
    first = await csrf_token(auth.client, "/hello")
    second = await csrf_token(auth.client, "/hello")
    other = AuthActions(app.test_client())
    await other.login()
    theirs = await csrf_token(other.client, "/hello")

    assert first == second
    assert theirs != first
    # The reused token is a good one: the logout form posts with it.
    response = await auth.client.post("/logout", form={"csrf_token": second})
    assert response.status_code == 302
    assert (await auth.client.get("/hello")).status_code == 302
