"""Every route is behind the login except an explicit list of public ones.

The check requests each route anonymously, so it also catches ``@login_required``
written above the route decorator, where it wraps nothing the app ever calls.
"""

from __future__ import annotations

from pathlib import Path

from quart import Quart
from quart.typing import ResponseReturnValue

from quartapp import create_app
from quartapp.auth.current import login_required
from tests.conftest import csrf_token, settings_at_head

PUBLIC_ENDPOINTS = frozenset(
    {
        "static",
        "pages.home",
        "pages.welcome",
        "auth.login",
        "auth.legacy_login",
        "auth.logout",
        "auth.trust_device",  # a browser that is not logged in enters its code here
        # A login's second step: only a browser whose password was right gets past it.
        "second_step.enter_code",
        # "Start again" on that step: it ends the browser's own pending login, if any.
        "second_step.start_again",
        # Signing in with a passkey: its options, and the assertion that logs in.
        "passkey_signin.login_options",
        "passkey_signin.login",
        "health.healthz",
        # Behind its own bearer token (METRICS_TOKEN) instead of a login: a 404 without it.
        "metrics.metrics",
        # A forgotten password: anyone may ask for a link, and the link is the proof.
        "mail.reset_request",
        "mail.reset_link",
        "mail.reset_password",
        # A new address's link: it proves the mailbox; asking for it took a strong login.
        "mail.confirm_link",
        "mail.confirm_email",
        # Sign-up (a 404 unless REGISTRATION_OPEN), and its link: the link is the proof.
        "signup.register",
        "signup.confirm",
    }
)


async def unprotected_routes(app: Quart) -> list[str]:
    """``METHOD path (endpoint)`` for each non-public route an anonymous visitor gets past.

    Requests carry a valid CSRF token, so that a POST reaches ``login_required`` instead
    of stopping at the CSRF check.
    """
    client = app.test_client()
    token = await csrf_token(client)
    adapter = app.url_map.bind("localhost")
    found = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint in PUBLIC_ENDPOINTS:
            continue
        # OPTIONS is answered by Quart itself and never reaches a view.
        for method in sorted((rule.methods or set()) - {"OPTIONS"}):
            path = adapter.build(rule.endpoint, dict.fromkeys(rule.arguments, 1), method=method)
            # quart.typing's TestClientProtocol.open gives json no default (QuartClient.open does).
            response = await client.open(path, method=method, headers={"X-CSRFToken": token})  # type: ignore[call-arg]
            location = response.headers.get("Location", "")
            if response.status_code != 302 or not location.startswith("/login?next="):
                found.append(f"{method} {path} ({rule.endpoint})")
    return found


async def test_every_non_public_route_sends_anonymous_visitors_to_login(app: Quart) -> None:
    assert await unprotected_routes(app) == []


def test_every_public_endpoint_exists(tmp_path: Path, database: str) -> None:
    app = create_app(settings_at_head(tmp_path, database))

    endpoints = {rule.endpoint for rule in app.url_map.iter_rules()}

    assert PUBLIC_ENDPOINTS - endpoints == set()


async def test_checker_reports_login_required_above_the_route(
    tmp_path: Path, database: str
) -> None:
    app = create_app(settings_at_head(tmp_path, database))

    @login_required  # wrong: the route below registers the bare view
    @app.route("/wrong", methods=["GET", "POST"])
    async def wrong() -> ResponseReturnValue:
        return "secret"

    @app.route("/right/<int:number>", methods=["GET", "POST"])
    @login_required
    async def right(number: int) -> ResponseReturnValue:
        return "secret"

    async with app.test_app():
        found = await unprotected_routes(app)

    assert found == ["GET /wrong (wrong)", "HEAD /wrong (wrong)", "POST /wrong (wrong)"]
