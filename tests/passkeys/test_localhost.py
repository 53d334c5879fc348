"""In development, the passkey pages opened at 127.0.0.1 link to the same page at localhost."""

from __future__ import annotations

from pathlib import Path

import pytest
from quart import Quart

from quartapp import create_app
from tests.conftest import AuthActions, add_user, body, settings_at_head

LOCAL = ["localhost", "127.0.0.1", "[::1]"]
NOTICE = 'class="passkey-localhost"'


def local_app(tmp_path: Path, database: str, **settings: object) -> Quart:
    return create_app(settings_at_head(tmp_path, database, TRUSTED_HOSTS=LOCAL, **settings))


@pytest.mark.parametrize(
    ("host", "path", "link"),
    [
        ("127.0.0.1:8000", "/login?next=%2Fhello", "http://localhost:8000/login?next=%2Fhello"),
        ("127.0.0.1", "/login", "http://localhost/login"),
        ("[::1]:5000", "/login", "http://localhost:5000/login"),
    ],
)
async def test_the_sign_in_page_at_a_loopback_address_links_to_localhost(
    tmp_path: Path, database: str, host: str, path: str, link: str
) -> None:
    app = local_app(tmp_path, database)
    async with app.test_app():
        response = await app.test_client().get(path, headers={"Host": host})
        page = await body(response)

    assert response.status_code == 200
    assert NOTICE in page
    assert f'<a href="{link}">{link}</a>' in page


async def test_adding_a_passkey_at_127_0_0_1_links_to_localhost(
    tmp_path: Path, database: str
) -> None:
    app = local_app(tmp_path, database)
    async with app.test_app():
        await add_user(app)
        auth = AuthActions(app.test_client())
        assert (await auth.login()).status_code == 302
        response = await auth.client.get(
            "/account/passkeys/new", headers={"Host": "127.0.0.1:8000"}
        )
        page = await body(response)

    assert 'href="http://localhost:8000/account/passkeys/new"' in page


@pytest.mark.parametrize(
    ("host", "path", "settings"),
    [
        ("localhost:8000", "/login", {}),  # already where passkeys work
        ("127.0.0.1:8000", "/", {}),  # no passkey control on the page
        ("127.0.0.1:8000", "/login", {"ENV": "production", "TESTING": False}),
    ],
    ids=["localhost", "other-page", "production"],
)
async def test_no_link_where_passkeys_already_work_or_are_not_offered(
    tmp_path: Path, database: str, host: str, path: str, settings: dict[str, object]
) -> None:
    app = local_app(tmp_path, database, **settings)
    async with app.test_client() as client:
        page = await body(await client.get(path, headers={"Host": host}))

    assert NOTICE not in page
