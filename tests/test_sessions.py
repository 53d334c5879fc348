"""Tests for the session cookie: what a logged-in client is sent, page after page."""

from __future__ import annotations

from quart.testing import QuartClient

from tests.conftest import AuthActions, csrf_token


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
    auth: AuthActions, client: QuartClient
) -> None:
    await auth.login()
    token = await csrf_token(client, "/hello")

    response = await client.post("/logout", form={"csrf_token": token})

    assert response.status_code == 302
    assert (await client.get("/hello")).status_code == 302
