"""The passkey pages and their guards: CSRF, ownership, freshness, limits and the throttle.

Also confirming a login with a passkey on /login/confirm, the login page's markup and
the startup check of ``WEBAUTHN_RP_ID``. The passkeys are made by the software
authenticator of tests/support/passkey_authenticator.py and verified in full by py_webauthn.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from quart import Quart

from quartapp import load_config
from quartapp.auth import settings as auth_settings
from quartapp.auth.prune import prune_pass
from quartapp.db import db
from quartapp.settings import ConfigError
from tests.conftest import (
    BOTH_DATABASES,
    PASSWORD,
    AuthActions,
    add_user,
    aquery,
    body,
    csrf_token,
    make_settings,
)
from tests.passkeys.test_passkeys import (
    CONFIRM,
    CONFIRM_OPTIONS,
    LOGIN,
    LOGIN_OPTIONS,
    NEW,
    NEW_OPTIONS,
    audit_events,
    post_json,
    register,
    sign_in,
)
from tests.support.passkey_authenticator import SoftAuthenticator

if TYPE_CHECKING:
    from quart.typing import TestClientProtocol


async def age_logins(settings: dict[str, Any]) -> None:
    """Make every login stale: older than REAUTH_MINUTES."""
    await aquery(settings, f"UPDATE logins SET verified_at = {time.time() - 3600}")


async def with_passkey(
    app: Quart, client: TestClientProtocol, name: str = "bob"
) -> SoftAuthenticator:
    """Make ``name`` with one passkey ("Phone"), then log out."""
    await add_user(app, name)
    actions = AuthActions(client)
    await actions.login(name)
    key = SoftAuthenticator()
    assert (await register(client, key, "Phone"))[0] == 200
    await actions.logout()
    return key


async def passkey_ids(settings: dict[str, Any], username: str) -> list[int]:
    rows = await aquery(
        settings,
        "SELECT passkeys.id FROM passkeys JOIN users ON users.id = passkeys.user_id "
        f"WHERE users.username = '{username}' ORDER BY passkeys.id",
    )
    return [int(row[0]) for row in rows]


@pytest.mark.parametrize(
    "path",
    [
        NEW_OPTIONS,
        NEW,
        LOGIN_OPTIONS,
        LOGIN,
        CONFIRM_OPTIONS,
        CONFIRM,
        "/account/passkeys/1/rename",
        "/account/passkeys/1/remove",
    ],
)
@pytest.mark.parametrize("token", [None, "not-a-token"])
async def test_every_post_needs_its_csrf_token(
    app: Quart,
    auth: AuthActions,
    client: TestClientProtocol,
    settings: dict[str, Any],
    path: str,
    token: str | None,
) -> None:
    await auth.login()
    assert (await register(client, SoftAuthenticator()))[0] == 200
    headers = {} if token is None else {"X-CSRFToken": token}
    response = await client.post(path, json={"name": "x"}, headers=headers)
    assert response.status_code == 400
    assert "The form could not be verified" in await body(response)
    form = await client.post(path, form={"name": "x", "csrf_token": token or ""})
    assert form.status_code == 400
    assert len(await passkey_ids(settings, "alice")) == 1


@BOTH_DATABASES
async def test_someone_elses_passkey_is_not_found(
    app: Quart, auth: AuthActions, client: TestClientProtocol, settings: dict[str, Any]
) -> None:
    await with_passkey(app, client)
    [bobs] = await passkey_ids(settings, "bob")
    await auth.login()
    for path in (f"/account/passkeys/{bobs}/rename", f"/account/passkeys/{bobs}/remove"):
        assert (await client.get(path)).status_code == 404
        token = await csrf_token(client, "/account/passkeys/new")
        response = await client.post(path, form={"name": "mine now", "csrf_token": token})
        assert response.status_code == 404
    assert (await client.get("/account/passkeys/999999/rename")).status_code == 404
    assert await aquery(settings, "SELECT name FROM passkeys") == [("Phone",)]
    assert "Phone" not in await body(await client.get("/account/passkeys"))


@pytest.mark.parametrize(
    ("name", "error"),
    [
        ("", "Enter a name for the passkey."),
        ("x" * 65, "Use at most 64 characters for the name."),
        ("bad\x00name", None),
    ],
)
async def test_a_rename_needs_a_sensible_name(
    app: Quart,
    client: TestClientProtocol,
    settings: dict[str, Any],
    name: str,
    error: str | None,
) -> None:
    await with_passkey(app, client, "alice")
    [own] = await passkey_ids(settings, "alice")
    await AuthActions(client).login()
    path = f"/account/passkeys/{own}/rename"
    token = await csrf_token(client, path)
    response = await client.post(path, form={"name": name, "csrf_token": token})
    assert response.status_code == 400
    if error:
        assert error in await body(response)
    assert await aquery(settings, "SELECT name FROM passkeys") == [("Phone",)]


@BOTH_DATABASES
async def test_rename_then_remove_with_a_fresh_login(
    app: Quart,
    client: TestClientProtocol,
    settings: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="quartapp.audit")
    key = await with_passkey(app, client, "alice")
    [own] = await passkey_ids(settings, "alice")
    await AuthActions(client).login()
    rename = f"/account/passkeys/{own}/rename"
    page = await body(await client.get(rename))
    assert 'value="Phone"' in page
    token = await csrf_token(client, rename)
    response = await client.post(rename, form={"name": "Old phone", "csrf_token": token})
    assert response.headers["Location"] == "/account/passkeys"
    listing = await body(await client.get("/account/passkeys"))
    assert "The passkey is now called “Old phone”." in listing

    # Removing needs a fresh login: a stale one confirms first, and nothing is removed.
    await age_logins(settings)
    remove = f"/account/passkeys/{own}/remove"
    assert (await client.get(remove)).headers["Location"].startswith("/login/confirm?next=")
    response = await client.post(remove, form={"csrf_token": token})
    assert response.headers["Location"] == f"/login/confirm?next=/account/passkeys/{own}/remove"
    assert await passkey_ids(settings, "alice") == [own]

    await aquery(settings, f"UPDATE logins SET verified_at = {time.time()}")
    page = await body(await client.get(remove))
    assert "Remove the passkey “Old phone”?" in page
    # The confirmation says what ends, and its button is the warning one.
    assert "<li>Signing in with “Old phone”: it no longer works here.</li>" in page
    assert '<button type="submit" class="button-warning">Remove the passkey</button>' in page
    response = await client.post(remove, form={"csrf_token": await csrf_token(client, remove)})
    assert response.headers["Location"] == "/account/passkeys"
    assert await passkey_ids(settings, "alice") == []
    assert "The passkey “Old phone” was removed." in await body(
        await client.get("/account/passkeys")
    )
    events = [e["event"] for e in audit_events(caplog)]
    assert events[-2:] == ["passkey_renamed", "passkey_removed"]

    await AuthActions(client).logout()
    status, answer = await sign_in(client, key)
    assert status == 400
    assert "not registered here" in answer["error"]


async def test_adding_needs_a_fresh_login(
    auth: AuthActions, client: TestClientProtocol, settings: dict[str, Any]
) -> None:
    await auth.login()
    token = await csrf_token(client, NEW)
    await age_logins(settings)
    assert (await client.get(NEW)).headers[
        "Location"
    ] == "/login/confirm?next=/account/passkeys/new"
    for path in (NEW_OPTIONS, NEW):
        status, answer = await post_json(client, path, {}, token)
        assert status == 403
        assert answer == {
            "error": "Confirm it's you first.",
            "redirect": "/login/confirm?next=/account/passkeys/new",
        }
    assert await aquery(settings, "SELECT count(*) FROM passkey_challenges") == [(0,)]


@pytest.fixture
def two_passkeys_at_most(settings: dict[str, Any]) -> None:
    settings["PASSKEYS_PER_USER_MAX"] = 2


@BOTH_DATABASES
async def test_a_user_has_at_most_the_limit(
    two_passkeys_at_most: None,
    auth: AuthActions,
    client: TestClientProtocol,
    settings: dict[str, Any],
) -> None:
    await auth.login()
    for _ in range(2):
        assert (await register(client, SoftAuthenticator()))[0] == 200
    token = await csrf_token(client, NEW)
    status, answer = await post_json(client, NEW_OPTIONS, {}, token)
    assert status == 409
    assert answer["error"].startswith("You have as many passkeys as an account may have.")
    assert "Add a passkey</a>" not in await body(await client.get("/account/passkeys"))
    assert "Remove one to add another." in await body(await client.get(NEW))


@BOTH_DATABASES
async def test_registrations_at_once_stay_within_the_limit(
    two_passkeys_at_most: None,
    auth: AuthActions,
    client: TestClientProtocol,
    settings: dict[str, Any],
) -> None:
    await auth.login()
    token = await csrf_token(client, NEW)
    answers = []
    for _ in range(5):
        status, options = await post_json(client, NEW_OPTIONS, {}, token)
        assert status == 200
        answers.append({"credential": SoftAuthenticator().create(options["publicKey"])})
    done = await asyncio.gather(*(post_json(client, NEW, data, token) for data in answers))
    assert sorted(status for status, _ in done) == [200, 200, 409, 409, 409]
    assert len(await passkey_ids(settings, "alice")) == 2


@BOTH_DATABASES
async def test_the_same_credential_cannot_be_registered_twice(
    app: Quart, auth: AuthActions, client: TestClientProtocol, settings: dict[str, Any]
) -> None:
    bobs = await with_passkey(app, client)
    await auth.login()
    status, answer = await register(client, bobs)
    assert (status, answer) == (409, {"error": "That passkey is registered already."})
    assert len(await passkey_ids(settings, "alice")) == 0


@BOTH_DATABASES
async def test_confirm_a_stale_login_with_a_passkey(
    app: Quart,
    client: TestClientProtocol,
    settings: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="quartapp.audit")
    bobs = await with_passkey(app, client)
    own = await with_passkey(app, client, "alice")
    await AuthActions(client).login()
    await age_logins(settings)
    page = await body(await client.get("/login/confirm?next=/account/passkeys/new"))
    assert "Confirm with a passkey</button>" in page
    assert "passkeys.js" in page

    path = f"{CONFIRM}?next=/account/passkeys/new"
    token = await csrf_token(client, "/login/confirm")
    status, options = await post_json(client, CONFIRM_OPTIONS, {}, token)
    assert status == 200
    assert [entry["id"] for entry in options["publicKey"]["allowCredentials"]] == [own.id]
    # bob's passkey, genuine, does not confirm alice's login.
    status, answer = await post_json(
        client, path, {"credential": bobs.get(options["publicKey"])}, token
    )
    assert (status, answer) == (400, {"error": "That passkey is not one of this account's."})
    assert (await client.get("/account/passkeys/new")).status_code == 302

    _, options = await post_json(client, CONFIRM_OPTIONS, {}, token)
    status, answer = await post_json(
        client, path, {"credential": own.get(options["publicKey"])}, token
    )
    assert (status, answer) == (200, {"redirect": "/account/passkeys/new"})
    assert (await client.get("/account/passkeys/new")).status_code == 200
    assert audit_events(caplog)[-1]["event"] == "reauthenticated"
    assert audit_events(caplog)[-1]["method"] == "passkey"
    # A sign-in challenge does not confirm a login.
    _, login = await post_json(client, LOGIN_OPTIONS, {}, token)
    status, _ = await post_json(client, path, {"credential": own.get(login["publicKey"])}, token)
    assert status == 400


async def test_without_passkeys_the_confirm_page_offers_none(
    auth: AuthActions, client: TestClientProtocol
) -> None:
    await auth.login()
    page = await body(await client.get("/login/confirm"))
    assert "Confirm with a passkey" not in page
    assert "passkeys.js" not in page
    token = await csrf_token(client, "/login/confirm")
    status, answer = await post_json(client, CONFIRM_OPTIONS, {}, token)
    assert status == 400
    assert answer["error"] == "This account has no passkeys. Confirm with your password."


@pytest.fixture
def three_failures_per_address(settings: dict[str, Any]) -> None:
    settings["LOGIN_FAILURES_PER_ADDRESS"] = 3


@BOTH_DATABASES
async def test_failed_passkey_sign_ins_count_in_the_throttle(
    three_failures_per_address: None,
    app: Quart,
    client: TestClientProtocol,
    settings: dict[str, Any],
) -> None:
    key = await with_passkey(app, client, "alice")
    # A right sign-in takes its attempt back.
    assert (await sign_in(client, key))[0] == 200
    await AuthActions(client).logout()
    token = await csrf_token(client)
    _, early = await post_json(client, LOGIN_OPTIONS, {}, token)
    for _ in range(3):
        assert (await sign_in(client, SoftAuthenticator()))[0] == 400
    locked = {"error": "There were too many failed attempts. Try again later."}
    assert await post_json(client, LOGIN_OPTIONS, {}, token) == (429, locked)
    # Even the owner's passkey waits: the address is locked (its name is not).
    credential = key.get(early["publicKey"])
    assert await post_json(client, LOGIN, {"credential": credential}, token) == (429, locked)
    assert await aquery(settings, "SELECT scope FROM throttle_counters WHERE attempts >= 3") == [
        ("addr",)
    ]
    assert await aquery(settings, "SELECT count(*) FROM logins") == [(0,)]


@pytest.fixture
def ip_address_trusted(settings: dict[str, Any]) -> None:
    settings["TRUSTED_HOSTS"] = ["localhost", "127.0.0.1"]


async def test_an_ip_address_cannot_be_a_relying_party(
    ip_address_trusted: None, client: TestClientProtocol
) -> None:
    host = {"host": "127.0.0.1"}
    page = await body(await client.get("/login", headers=host))
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page)
    assert token is not None
    response = await client.post(LOGIN_OPTIONS, json={}, headers={**host, "X-CSRFToken": token[1]})
    assert response.status_code == 400
    assert json.loads(await body(response)) == {
        "error": "Passkeys need the site's name in the address bar, not an IP address."
    }


async def test_the_login_page_offers_passkeys(client: TestClientProtocol) -> None:
    page = await body(await client.get("/login?next=/account/passkeys"))
    assert 'autocomplete="username webauthn"' in page
    assert 'src="/static/passkeys.js" defer' in page
    assert "Sign in with a passkey</button>" in page
    assert 'data-url="/login/passkey?next=/account/passkeys"' in page
    assert "Signing in with a passkey needs JavaScript. Your password works without it." in page


@BOTH_DATABASES
async def test_expired_challenges_are_pruned(
    app: Quart, auth: AuthActions, client: TestClientProtocol, settings: dict[str, Any]
) -> None:
    await auth.login()
    token = await csrf_token(client, NEW)
    for _ in range(3):
        assert (await post_json(client, NEW_OPTIONS, {}, token))[0] == 200
    await aquery(
        settings, f"UPDATE passkey_challenges SET expires_at = {time.time() - 1} WHERE 1 = 1"
    )
    assert (await post_json(client, NEW_OPTIONS, {}, token))[0] == 200
    async with app.app_context():
        pruned = await prune_pass(db.store.sessionmaker, auth_settings.of(app))
    assert pruned["challenges"] == 3
    assert await aquery(settings, "SELECT count(*) FROM passkey_challenges") == [(1,)]


@pytest.mark.parametrize(
    ("hosts", "fine"),
    [
        (["example.com", "app.example.com", ".example.com", "10.0.0.1", "[::1]"], True),
        (["app.example.com", "example.org"], False),
        (["notexample.com"], False),
    ],
)
def test_the_rp_id_must_cover_every_trusted_host(
    tmp_path: Path, hosts: list[str], fine: bool
) -> None:
    overrides = make_settings(
        tmp_path, ENV="development", WEBAUTHN_RP_ID="example.com", TRUSTED_HOSTS=hosts
    )
    if fine:
        assert load_config(overrides)["WEBAUTHN_RP_ID"] == "example.com"
        return
    with pytest.raises(ConfigError) as raised:
        load_config(overrides)
    message = str(raised.value)
    assert message.startswith("WEBAUTHN_RP_ID 'example.com' does not cover the trusted host")
    assert "\n" not in message


@BOTH_DATABASES
async def test_failed_passkey_sign_ins_count_against_the_trusted_device(
    app: Quart, client: TestClientProtocol, settings: dict[str, Any]
) -> None:
    # alice's password login made this browser one of her trusted devices.
    key = await with_passkey(app, client, "alice")
    for _ in range(5):
        status, answer = await sign_in(client, key, bad_signature=True)
        assert status == 400, answer
    status, answer = await sign_in(client, key)
    assert (status, answer) == (
        429,
        {"error": "There were too many failed attempts. Try again later."},
    )
    assert await aquery(
        settings, "SELECT scope, attempts FROM throttle_counters ORDER BY scope"
    ) == [
        # The sixth was refused by a read: a lockout counts nothing more.
        ("addr", 5),
        ("device", 5),
    ]
    # Another browser, not her device, still signs in with the passkey.
    other = app.test_client()
    assert (await sign_in(other, key))[0] == 200


@pytest.fixture
def subdomain_site(settings: dict[str, Any]) -> None:
    settings.update(
        ENV="development", TRUSTED_HOSTS=["app.example.test"], WEBAUTHN_RP_ID="example.test"
    )


async def test_a_configured_rp_id_serves_its_subdomains(
    subdomain_site: None, app: Quart, settings: dict[str, Any]
) -> None:
    await add_user(app)
    client = app.test_client()
    host = {"host": "app.example.test"}
    page = await body(await client.get("/login", headers=host))
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page)
    assert token is not None
    form = {"username": "alice", "password": PASSWORD, "csrf_token": token[1]}
    assert (await client.post("/login", form=form, headers=host)).status_code == 302
    page = await body(await client.get(NEW, headers=host))
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page)
    assert token is not None
    headers = {**host, "X-CSRFToken": token[1]}

    async def send(path: str, data: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        response = await client.post(path, json=data, headers=headers)
        return response.status_code, json.loads(await body(response))

    _, options = await send(NEW_OPTIONS, {})
    assert options["publicKey"]["rp"]["id"] == "example.test"
    key = SoftAuthenticator()
    origin = "http://app.example.test"
    # Made for the parent domain but answered at another origin: refused.
    credential = key.create(options["publicKey"], origin="http://example.test")
    assert (await send(NEW, {"credential": credential}))[0] == 400
    _, options = await send(NEW_OPTIONS, {})
    credential = key.create(options["publicKey"], origin=origin)
    assert (await send(NEW, {"credential": credential}))[0] == 200
    _, request = await send(CONFIRM_OPTIONS, {})
    assert request["publicKey"]["rpId"] == "example.test"
    # Signed for the subdomain's own name as RP ID: not the site's passkey.
    wrong = key.get(request["publicKey"], origin=origin, rp_id="app.example.test")
    assert (await send(CONFIRM, {"credential": wrong}))[0] == 400
    _, request = await send(CONFIRM_OPTIONS, {})
    right = key.get(request["publicKey"], origin=origin)
    assert await send(CONFIRM, {"credential": right}) == (200, {"redirect": "/account"})
