"""HTTPS behind a proxy: plain HTTP is sent to HTTPS, and forms work over HTTPS.

A router in front (``TRUSTED_PROXY_HOPS``) says how the browser reached it in
``X-Forwarded-Proto``. A production app answers a request it says was plain HTTP with a
308 to the same URL on ``https://`` (``/healthz`` excepted, for the router's checks), and
never serves ``/metrics`` over it. Over HTTPS a form's post must come from this site: a
same-origin ``Origin`` (or ``Sec-Fetch-Site: same-origin``) does where a privacy tool
strips the Referer, and each refusal says why it happened.

The in-process cases use the test client with ``scheme="https"``; the real-server cases
run hypercorn behind a pretend router that sends ``X-Forwarded-Proto``.
"""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from quart import Quart

from quartapp import create_app
from tests.conftest import (
    CSRF_INPUT,
    PASSWORD,
    VALUE,
    AuthActions,
    body,
    settings_at_head,
)
from tests.support.server import Browser, Server, free_port, hypercorn_command, running, server_env

if TYPE_CHECKING:
    # Only for annotations: a Test* class at module level would be collected by pytest.
    from quart.typing import TestClientProtocol

METRICS_TOKEN = "metrics-token-0123456789abcdefghijklmnopqrstuvwxyz"
PLAIN = {"X-Forwarded-Proto": "http"}
SECURE = {"X-Forwarded-Proto": "https"}
SAME_ORIGIN = "https://localhost"
CROSS_SITE = "This request came from another site"
NOT_VERIFIED = "The form could not be verified"
NO_SOURCE = "did not say which page sent it"


def production(tmp_path: Path, database: str, **extra: Any) -> Quart:
    """A production app behind one trusted proxy, on the test's database."""
    production = {
        "ENV": "production",
        "TESTING": False,
        "TRUSTED_PROXY_HOPS": 1,
        "METRICS_TOKEN": METRICS_TOKEN,
    }
    return create_app(settings_at_head(tmp_path, database, **{**production, **extra}))


# -- Plain HTTP is sent to HTTPS ----------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "location"),
    [
        ("GET", "/", "https://localhost/"),
        ("GET", "/hello?x=1&y=%2F", "https://localhost/hello?x=1&y=%2F"),
        ("GET", "/caf%C3%A9", "https://localhost/caf%C3%A9"),
        # Before the CSRF check: a 308 keeps the method and body for the HTTPS retry.
        ("POST", "/login?next=/hello", "https://localhost/login?next=/hello"),
        ("GET", "/metrics", "https://localhost/metrics"),
    ],
)
async def test_plain_http_from_the_proxy_gets_a_308_to_the_same_url_on_https(
    tmp_path: Path, database: str, method: str, path: str, location: str
) -> None:
    app = production(tmp_path, database)
    async with app.test_app():
        # quart.typing's TestClientProtocol.open gives json no default (QuartClient.open does).
        response = await app.test_client().open(path, method=method, headers=PLAIN)  # type: ignore[call-arg]

    assert response.status_code == 308
    assert response.headers["Location"] == location


async def test_the_health_check_answers_over_plain_http(tmp_path: Path, database: str) -> None:
    app = production(tmp_path, database)
    async with app.test_app():
        response = await app.test_client().get("/healthz", headers=PLAIN)

    assert response.status_code == 200


async def test_https_from_the_proxy_is_served(tmp_path: Path, database: str) -> None:
    app = production(tmp_path, database)
    async with app.test_app():
        page = await app.test_client().get("/", headers=SECURE)
        metrics = await app.test_client().get(
            "/metrics", headers={**SECURE, "Authorization": f"Bearer {METRICS_TOKEN}"}
        )

    assert page.status_code == 200
    assert "Strict-Transport-Security" in page.headers
    assert metrics.status_code == 200


@pytest.mark.parametrize(
    "extra",
    [
        {"HTTPS_REDIRECT": False},
        {"TRUSTED_PROXY_HOPS": 0},  # X-Forwarded-Proto is the client's word: ignored
        {"ENV": "development", "TESTING": True},  # development stays on plain http
    ],
    ids=["redirect-off", "no-trusted-proxy", "development"],
)
async def test_plain_http_is_served_where_the_redirect_does_not_apply(
    tmp_path: Path, database: str, extra: dict[str, Any]
) -> None:
    app = production(tmp_path, database, **extra)
    async with app.test_app():
        response = await app.test_client().get("/", headers=PLAIN)

    assert response.status_code == 200


async def test_the_redirect_is_turned_off_from_the_environment(
    tmp_path: Path, database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QUARTAPP_HTTPS_REDIRECT", "false")
    app = production(tmp_path, database)
    async with app.test_app():
        response = await app.test_client().get("/", headers=PLAIN)

    assert app.config["HTTPS_REDIRECT"] is False
    assert response.status_code == 200


async def test_metrics_are_never_served_over_plain_http_with_the_redirect_off(
    tmp_path: Path, database: str
) -> None:
    app = production(tmp_path, database, HTTPS_REDIRECT=False)
    headers = {"Authorization": f"Bearer {METRICS_TOKEN}"}
    async with app.test_app():
        plain = await app.test_client().get("/metrics", headers={**PLAIN, **headers})
        secure = await app.test_client().get("/metrics", headers={**SECURE, **headers})

    assert plain.status_code == 404
    assert secure.status_code == 200


# -- Forms over HTTPS: where the post came from -----------------------------------------


def form_token(page: str) -> str:
    """The CSRF token of the form on ``page``, read as a browser would."""
    field = CSRF_INPUT.search(page)
    assert field, "no CSRF field on the page"
    value = VALUE.search(field.group(0))
    assert value, "an empty CSRF field"
    return value.group(1)


async def csrf_token_over_https(client: TestClientProtocol, path: str) -> str:
    """The token of the form on ``path``, fetched over HTTPS."""
    response = await client.get(path, scheme="https")
    assert response.status_code == 200
    return form_token(await body(response))


async def https_login(client: TestClientProtocol, headers: dict[str, str]) -> Any:
    """Post the real login form over HTTPS with ``headers``, its token read from the page."""
    token = await csrf_token_over_https(client, "/login")
    form = {"username": "alice", "password": PASSWORD, "csrf_token": token}
    return await client.post("/login", form=form, headers=headers, scheme="https")


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": SAME_ORIGIN},
        {"Origin": "HTTPS://LOCALHOST:443"},
        {"Sec-Fetch-Site": "same-origin"},
        {"Origin": "null", "Sec-Fetch-Site": "same-origin"},  # referrer policy no-referrer
        {"Referer": "https://localhost/login"},
    ],
    ids=["origin", "origin-spelled-out", "fetch-metadata", "null-origin", "referer"],
)
async def test_a_login_over_https_without_a_referer_succeeds_from_this_site(
    auth: AuthActions, headers: dict[str, str]
) -> None:
    response = await https_login(auth.client, headers)

    assert response.status_code == 302
    assert response.headers["Location"] == "/hello"
    assert (await auth.client.get("/hello", scheme="https")).status_code == 200


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example"},
        {"Origin": "http://localhost"},  # plain-HTTP page of this host
        {"Origin": "https://localhost:8443"},
        {"Origin": "https://localhost:99999"},  # not even a port
        {"Referer": "https://evil.example/login"},
        {"Origin": "https://evil.example", "Referer": "https://localhost/login"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Origin": "null", "Sec-Fetch-Site": "same-site"},
    ],
    ids=[
        "other-origin",
        "http-origin",
        "other-port",
        "bad-port",
        "other-referer",
        "origin-decides",
        "fetch-cross-site",
        "null-same-site",
    ],
)
async def test_a_login_over_https_from_another_site_is_refused_and_says_so(
    auth: AuthActions, headers: dict[str, str]
) -> None:
    response = await https_login(auth.client, headers)

    page = await body(response)
    assert response.status_code == 403
    assert CROSS_SITE in page
    assert 'action="/login"' in page  # the login form again, to sign in from here
    assert (await auth.client.get("/hello", scheme="https")).status_code == 302


async def test_a_post_over_https_that_says_nothing_of_where_it_came_from_says_so(
    auth: AuthActions,
) -> None:
    assert (await https_login(auth.client, {"Origin": SAME_ORIGIN})).status_code == 302
    token = await csrf_token_over_https(auth.client, "/logout")

    response = await auth.client.post("/logout", form={"csrf_token": token}, scheme="https")

    page = await body(response)
    assert response.status_code == 400
    assert NO_SOURCE in page
    assert "<title>Form not verified · quartapp</title>" in page
    assert (await auth.client.get("/hello", scheme="https")).status_code == 200


async def test_a_post_from_another_site_with_a_good_token_is_refused(
    auth: AuthActions,
) -> None:
    assert (await https_login(auth.client, {"Origin": SAME_ORIGIN})).status_code == 302
    token = await csrf_token_over_https(auth.client, "/logout")

    response = await auth.client.post(
        "/logout",
        form={"csrf_token": token},
        headers={"Origin": "https://evil.example"},
        scheme="https",
    )

    assert response.status_code == 403
    assert CROSS_SITE in await body(response)
    assert (await auth.client.get("/hello", scheme="https")).status_code == 200


async def test_a_same_origin_post_over_https_still_needs_its_token(auth: AuthActions) -> None:
    await auth.client.get("/login", scheme="https")

    response = await auth.client.post(
        "/login",
        form={"username": "alice", "password": PASSWORD},
        headers={"Origin": SAME_ORIGIN},
        scheme="https",
    )

    assert response.status_code == 400
    assert NOT_VERIFIED in await body(response)
    assert (await auth.client.get("/hello", scheme="https")).status_code == 302


# -- On a real server behind a pretend router ---------------------------------------------


@contextmanager
def behind_router(directory: Path, template: Path, **settings: str) -> Iterator[Server]:
    """A production hypercorn behind one trusted router, its cookies sent over http too.

    urllib keeps Secure cookies for https:// URLs only, and the router is pretended, so
    the session cookie is not Secure here; nothing else differs from production.
    """
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copy(template, directory / "quartapp.db")
    env = server_env(
        directory / "instance",
        QUARTAPP_ENV="production",
        QUARTAPP_TRUSTED_HOSTS='["127.0.0.1"]',
        QUARTAPP_TRUSTED_PROXY_HOPS="1",
        QUARTAPP_SESSION_COOKIE_SECURE="false",
        DATABASE_URL=f"sqlite:///{directory / 'quartapp.db'}",
        SECRET_KEY=secrets.token_urlsafe(32),
        **settings,
    )
    port = free_port()
    with running(hypercorn_command(port), env, port, directory / "logs") as server:
        server.wait_healthy()
        yield server


@pytest.fixture(scope="module")
def router_server(
    tmp_path_factory: pytest.TempPathFactory, served_sqlite_template: Path
) -> Iterator[Server]:
    """One production server behind the pretend router, for the tests that share it."""
    with behind_router(tmp_path_factory.mktemp("behind-router"), served_sqlite_template) as server:
        yield server


@pytest.mark.server
def test_plain_http_through_the_router_gets_a_308_to_https(router_server: Server) -> None:
    browser = Browser(router_server.base_url)

    page = browser.get("/login?next=/hello", PLAIN)

    assert page.status == 308
    assert page.location == f"https://127.0.0.1:{router_server.port}/login?next=/hello"


@pytest.mark.server
def test_the_routers_health_check_is_answered_over_plain_http(router_server: Server) -> None:
    page = Browser(router_server.base_url).get("/healthz", PLAIN)

    assert page.status == 200


@pytest.mark.server
def test_a_login_through_the_router_over_https_with_no_referer_succeeds(
    router_server: Server,
) -> None:
    browser = Browser(router_server.base_url)
    origin = f"https://127.0.0.1:{router_server.port}"
    login = browser.get("/login", SECURE)
    assert login.status == 200
    form = {"username": "alice", "password": PASSWORD, "csrf_token": form_token(login.text)}

    page = browser.post("/login", form, {**SECURE, "Origin": origin})

    assert (page.status, page.location) == (302, "/hello")
    assert browser.get("/hello", SECURE).status == 200


@pytest.mark.server
def test_the_redirect_can_be_turned_off_on_a_real_server(
    tmp_path: Path, served_sqlite_template: Path
) -> None:
    settings = {"QUARTAPP_HTTPS_REDIRECT": "false"}
    with behind_router(tmp_path, served_sqlite_template, **settings) as server:
        page = Browser(server.base_url).get("/login", PLAIN)

    assert page.status == 200
