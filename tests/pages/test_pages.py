"""The pages blueprint: public pages, the protected greeting and the shared layout."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from quart import Quart

from tests.conftest import AuthActions, body

if TYPE_CHECKING:
    # Only for annotations: a Test* class at module level would be collected by pytest.
    from quart.typing import TestClientProtocol


@pytest.mark.parametrize(("path", "heading"), [("/", "<h1"), ("/welcome", "Welcome")])
async def test_public_pages_render_for_anyone(
    client: TestClientProtocol, path: str, heading: str
) -> None:
    response = await client.get(path)

    page = await body(response)
    assert response.status_code == 200
    assert heading in page
    assert 'href="/static/style.css"' in page


async def test_nav_links_are_built_for_every_page(client: TestClientProtocol) -> None:
    page = await body(await client.get("/welcome"))

    for link in ('href="/"', 'href="/welcome"', 'href="/hello"', 'href="/login"'):
        assert link in page


async def test_hello_is_protected(client: TestClientProtocol) -> None:
    response = await client.get("/hello")

    assert response.status_code == 302
    assert response.headers["Location"] == "/login?next=/hello"


async def test_hello_greets_the_logged_in_user(auth: AuthActions) -> None:
    await auth.login()

    page = await body(await auth.client.get("/hello"))

    assert "Hello, alice!" in page


async def test_flash_is_shown_once(auth: AuthActions) -> None:
    await auth.login()

    first = await body(await auth.client.get("/hello"))
    second = await body(await auth.client.get("/hello"))

    assert "You were signed in as alice." in first
    assert "You were signed in as alice." not in second


async def test_hello_does_not_repeat_the_sign_in_message(auth: AuthActions) -> None:
    await auth.login()

    page = await body(await auth.client.get("/hello"))

    assert "You were signed in as alice." in page
    assert "You are signed in." not in page


async def test_stylesheet_is_served(client: TestClientProtocol) -> None:
    response = await client.get("/static/style.css")

    assert response.status_code == 200
    assert response.mimetype == "text/css"


async def test_cached_links_follow_the_root_path_they_were_built_for(app: Quart) -> None:
    client = app.test_client()
    plain = await (await client.get("/")).get_data(as_text=True)
    mounted = await (await client.get("/", root_path="/app")).get_data(as_text=True)

    assert 'href="/static/style.css"' in plain
    assert 'href="/app/static/style.css"' in mounted
    assert 'href="/static/style.css"' not in mounted
