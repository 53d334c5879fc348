"""Taking one's data: /account/export, a JSON download (a GET: a link downloads it) of
everything stored about the person, with no secret in it.

What the download holds is read from the database, so it runs on both; the page and
its rules run on SQLite.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from quart import Quart

from tests.conftest import BOTH_DATABASES, AuthActions, add_user, aquery, body, csrf_token

from .leaving import SECRET, UA, seed
from .test_delete import sign_in_with_code

if TYPE_CHECKING:
    from quart.typing import TestClientProtocol

EXPORT = "/account/export"


async def download(client: TestClientProtocol) -> Any:
    return await client.get(EXPORT)


@BOTH_DATABASES
async def test_the_download_holds_everything_stored_about_the_person(
    app: Quart, client: TestClientProtocol, settings: dict[str, Any]
) -> None:
    await add_user(app, "alice")
    await add_user(app, "bob")
    await seed(app, "alice")
    await seed(app, "bob")
    auth = AuthActions(client)
    await sign_in_with_code(auth)
    await aquery(settings, f"UPDATE logins SET user_agent = '{UA}'")

    response = await download(client)

    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert response.headers["Content-Disposition"] == 'attachment; filename="quartapp-alice.json"'
    data = json.loads(await body(response))
    assert data["account"]["username"] == "alice"
    assert data["account"]["created_at"].endswith("+00:00")
    assert data["email"]["address"] == "alice@example.test"
    assert data["email"]["confirmed"] is True
    assert data["email"]["confirmed_at"] is not None
    (login,) = data["logins"]
    assert login["browser"] == "Firefox on Linux"
    assert login["method"] == "password+totp"
    assert {"started_at", "last_seen_at", "expires_at", "address"} <= set(login)
    # The seeded one and the browser that just signed in.
    assert len(data["trusted_devices"]) == 2
    assert all(d["trusted_at"] and d["last_used_at"] for d in data["trusted_devices"])
    assert [(p["name"], p["last_used_at"] is not None) for p in data["passkeys"]] == [
        ("Work laptop", True)
    ]
    assert data["two_factor"]["totp_on"] is True
    assert data["two_factor"]["recovery_codes_left"] == 1
    (wrong,) = data["two_factor"]["wrong_codes"]
    assert (wrong["address"], wrong["step"]) == ("192.0.2.7", "sign-in")
    # Nothing of anyone else's, and no secret.
    text = json.dumps(data)
    for secret in (
        "bob",
        SECRET,
        "alice-credential",
        "public key",
        "alice-code-hash",
        "alice-device",
        "alice-token",
        "argon2",
    ):
        assert secret not in text


async def test_an_account_with_nothing_else_exports_its_account(auth: AuthActions) -> None:
    await auth.login()

    data = json.loads(await body(await download(auth.client)))

    assert data["email"] is None
    assert data["passkeys"] == []
    assert data["two_factor"] == {
        "totp_on": False,
        "totp_on_since": None,
        "recovery_codes_left": 0,
        "wrong_codes": [],
    }
    assert len(data["logins"]) == 1


async def test_a_post_is_refused(auth: AuthActions) -> None:
    await auth.login()
    token = await csrf_token(auth.client, "/account/delete")

    response = await auth.client.post(EXPORT, form={"csrf_token": token})

    assert response.status_code == 405


async def test_the_page_needs_a_login(client: TestClientProtocol) -> None:
    response = await client.get(EXPORT)

    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")


async def test_the_download_needs_a_fresh_login(
    auth: AuthActions, settings: dict[str, Any]
) -> None:
    await auth.login()
    await aquery(settings, f"UPDATE logins SET verified_at = {time.time() - 86400}")

    response = await download(auth.client)

    assert response.status_code == 302
    assert response.headers["Location"] == "/login/confirm?next=/account/export"


async def test_with_a_second_factor_the_password_alone_does_not_download(
    app: Quart, auth: AuthActions
) -> None:
    await seed(app, "alice", totp=False)  # a passkey
    await auth.login()

    response = await auth.client.get(EXPORT)

    assert response.status_code == 302
    assert response.headers["Location"] == "/login/confirm?next=/account/export"
