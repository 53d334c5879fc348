"""The app under ASGI clients other than Quart's own: httpx with asgi-lifespan.

Anything built on quartapp can be tested the same way: LifespanManager runs the
app's startup (database, first-run hooks) and shutdown, and httpx speaks to the app
in-process through ASGITransport, as it would to a server.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from quartapp import create_app
from tests.conftest import CSRF_INPUT, PASSWORD, VALUE, add_user

BASE_URL = "http://localhost"


@pytest.fixture
async def http(settings: dict[str, Any]) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client for a started app on which ``alice`` exists."""
    app = create_app(settings)
    # Quart's __call__ takes hypercorn's TypedDict scope and events; asgi-lifespan's ASGIApp
    # type says MutableMapping, which a TypedDict parameter does not accept.
    async with LifespanManager(app) as manager:  # type: ignore[arg-type]
        await add_user(app)
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
            yield client


def csrf_token_in(page: str) -> str:
    field = CSRF_INPUT.search(page)
    assert field, "no CSRF field on the page"
    value = VALUE.search(field.group(0))
    assert value, "empty CSRF field"
    return value.group(1)


async def test_httpx_client_logs_in_with_the_pages_token_and_sees_hello(
    http: httpx.AsyncClient,
) -> None:
    form = await http.get("/login")
    token = csrf_token_in(form.text)

    response = await http.post(
        "/login", data={"username": "alice", "password": PASSWORD, "csrf_token": token}
    )

    assert (response.status_code, response.headers["Location"]) == (302, "/hello")
    hello = await http.get("/hello")
    assert hello.status_code == 200
    assert re.search(r"<h1>Hello, alice!</h1>", hello.text)


async def test_httpx_client_without_login_is_sent_to_the_login_page(
    http: httpx.AsyncClient,
) -> None:
    response = await http.get("/hello")

    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=")
    page = await http.get(response.headers["Location"])
    assert "You need to login first." in page.text
