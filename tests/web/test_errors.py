"""Error pages: each error gets a page that fits the site and never a traceback."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from quart import Quart

from quartapp.web.errors import Throttled, wait_in_words
from tests.conftest import add_user, body, csrf_token

if TYPE_CHECKING:
    # Only for annotations: a Test* class at module level would be collected by pytest.
    from quart.typing import TestClientProtocol


async def test_unknown_path_gets_404_page(client: TestClientProtocol) -> None:
    response = await client.get("/no/such/page")

    page = await body(response)
    assert response.status_code == 404
    assert "Page not found" in page
    assert 'href="/static/style.css"' in page


@pytest.mark.parametrize(("method", "path"), [("DELETE", "/login"), ("POST", "/hello")])
async def test_unsupported_method_gets_405_with_allow(
    client: TestClientProtocol, method: str, path: str
) -> None:
    token = await csrf_token(client)

    # quart.typing's TestClientProtocol.open gives json no default (QuartClient.open does).
    response = await client.open(path, method=method, form={"csrf_token": token})  # type: ignore[call-arg]

    assert response.status_code == 405
    assert "GET" in response.headers["Allow"]
    assert "Method not allowed" in await body(response)


async def test_json_body_to_login_gets_a_4xx_page(client: TestClientProtocol) -> None:
    token = await csrf_token(client)

    response = await client.post(
        "/login", json=["not", "a", "form"], headers={"X-CSRFToken": token}
    )

    assert response.status_code == 415
    assert "Traceback" not in await body(response)


async def test_csrf_failure_on_login_shows_the_form_again(client: TestClientProtocol) -> None:
    await client.get("/login")

    response = await client.post("/login?next=/hello", form={"username": "x"})

    page = await body(response)
    assert response.status_code == 400
    assert "The form could not be verified. Please try again." in page
    assert 'action="/login?next=/hello"' in page


@pytest.mark.parametrize(
    ("seconds", "words"),
    [
        (900, "in 15 minutes"),
        (899, "in 15 minutes"),
        (61, "in 2 minutes"),
        (120, "in 2 minutes"),
        (60, "in 60 seconds"),
        (30, "in 30 seconds"),
        (1, "in 1 second"),
        (0, "in 1 second"),
        (3600, "in 60 minutes"),
        (3601, "in 2 hours"),
    ],
)
def test_wait_in_words_rounds_up(seconds: int, words: str) -> None:
    assert wait_in_words(seconds) == words


async def test_lockout_page_says_how_long_and_links_back_to_the_login_form(
    app: Quart, client: TestClientProtocol
) -> None:
    await add_user(app)
    for _ in range(5):
        token = await csrf_token(client, "/login?next=/hello")
        form = {"username": "alice", "password": "wrong", "csrf_token": token}
        await client.post("/login?next=/hello", form=form)
    token = await csrf_token(client, "/login?next=/hello")

    response = await client.post(
        "/login?next=/hello", form={"username": "alice", "password": "wrong", "csrf_token": token}
    )

    page = await body(response)
    retry_after = int(response.headers["Retry-After"])
    assert response.status_code == 429
    assert f"Try again {wait_in_words(retry_after)}." in page
    assert "wait a moment" not in page
    assert '<a href="/login?next=/hello">Back to the sign-in page</a>' in page


def test_busy_refusals_log_one_line_a_second_and_count_the_rest() -> None:
    # A flood turned away by the hashing line's fair shares must not bury the log.
    gate = Throttled()

    assert gate.due(100.0) == 0
    assert gate.due(100.2) is None
    assert gate.due(100.9) is None
    assert gate.due(101.0) == 2
    assert gate.due(101.5) is None
    assert gate.due(105.0) == 1
