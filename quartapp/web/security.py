"""Protections that wrap the whole app: proxy handling, the host check, HTTPS and headers.

The host check itself is in :mod:`.hosts`; this module installs it.

**HTTPS.** Behind a trusted proxy (``TRUSTED_PROXY_HOPS`` of 1 or more) the proxy fix sets
the request's scheme from the proxy's ``X-Forwarded-Proto``. In production a request it
reports as plain HTTP gets a 308 to the same path and query on ``https://`` and the
trusted Host (:func:`require_https`, unless ``HTTPS_REDIRECT`` is false), before any
other hook reads its body; ``/healthz`` is answered as it is, for the router's checks.
Without a trusted proxy the header is the client's word, so nothing is redirected; in
development nothing is either, as cookies there are not Secure and plain HTTP works.

The CSRF check, which runs after these hooks, is in :mod:`.csrf`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import quote

from hypercorn.middleware import ProxyFixMiddleware
from quart import Quart, redirect, request
from quart.wrappers import Response
from werkzeug.exceptions import BadRequest
from werkzeug.wrappers import Response as WerkzeugResponse

from .. import settings
from .hosts import HostGuard, check_host

# No inline script or style anywhere (the templates use static/style.css only), so the
# policy can be strict; form-action and frame-ancestors do not fall back to default-src.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    # Not no-referrer: Quart-WTF's CSRF check over HTTPS requires a same-origin Referer.
    "Referrer-Policy": "strict-origin-when-cross-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
}
HSTS = "max-age=63072000; includeSubDomains"
# The platform router's health check, answered over plain HTTP too (web.health).
HEALTH_ENDPOINT = "health.healthz"
# Why a post over HTTPS was refused before its token was read: the CSRFError's
# description, which web.errors turns into words for the person.


async def refuse_unnamed_fields() -> None:
    """Refuse a multipart form with a part that has no name.

    Quart files such a part under the key None, and Quart-WTF's CSRF check, which
    runs next, calls ``key.endswith`` on every key and fails with a 500. No browser
    sends a nameless part, so the request gets a plain 400.
    """
    if request.mimetype == "multipart/form-data":
        form, files = await request.form, await request.files
        if None in form or None in files:
            raise BadRequest("A form field has no name.")


def security_headers(production: bool) -> tuple[tuple[str, str], ...]:
    """The headers every response gets (HSTS in production), as (name, value) pairs."""
    pairs = tuple(HEADERS.items())
    return (*pairs, ("Strict-Transport-Security", HSTS)) if production else pairs


def header_adder(
    headers: tuple[tuple[str, str], ...],
) -> Callable[[Response], Awaitable[Response]]:
    """The after-request hook that adds ``headers`` to every response, error pages included.

    A response keeps a header it already has (a view may set its own). The names it has
    are read in one pass: werkzeug's ``Headers.setdefault`` scans the list and raises a
    ``KeyError`` inside for each missing name, which was 9% of an anonymous ``/``.
    """
    names = [(name.lower(), (name, value)) for name, value in headers]

    async def add_security_headers(response: Response) -> Response:
        present = {name.lower() for name, _ in response.headers}
        response.headers.extend([pair for name, pair in names if name not in present])
        if request.endpoint != "static":
            # Every page shows who is logged in, so no cache may keep or share one.
            if "cache-control" in present:
                response.headers["Cache-Control"] = "no-store"
            else:
                response.headers.add("Cache-Control", "no-store")
            if "vary" in present:
                response.vary.add("Cookie")
            else:
                response.headers.add("Vary", "Cookie")
        return response

    return add_security_headers


async def close_ambiguous_framing(response: Response) -> Response:
    """Close the connection after a request that sent Content-Length and chunked both.

    RFC 9112 (6.1) says such a message may be a smuggling attempt and the connection
    must be closed after it. hypercorn's parser (h11) frames it by Transfer-Encoding but
    keeps the connection open, so a request hidden after the body would be answered.
    """
    if "Transfer-Encoding" in request.headers and "Content-Length" in request.headers:
        response.headers["Connection"] = "close"
    return response


def over_plain_http() -> bool:
    """Whether the trusted proxy says this production request reached it over plain HTTP.

    Only a proxy in ``TRUSTED_PROXY_HOPS`` can say so: without one the scheme is the
    socket's, and hypercorn behind a router always speaks plain HTTP to it.
    """
    config = settings.current()
    return config.production and config.trusted_proxy_hops >= 1 and request.scheme == "http"


async def require_https() -> WerkzeugResponse | None:
    """Send a request the proxy reports as plain HTTP to the same URL on HTTPS (308).

    Over plain HTTP a browser drops the Secure session cookie, so no form could ever be
    sent; 308 (not 301) keeps a POST a POST. The Host has passed :func:`check_host`.
    """
    if not over_plain_http() or request.endpoint == HEALTH_ENDPOINT:
        return None
    return redirect(f"https://{request.host}{path_as_sent()}", 308)


def path_as_sent() -> str:
    """The request's path and query as the client wrote them, percent-escapes kept.

    ``request.path`` is decoded (``%2F`` became ``/``), so the server's ``raw_path`` is
    used where it is a plain path; h11 lets only visible ASCII through, nothing to escape.
    """
    raw = request.scope.get("raw_path")
    path = raw.decode("latin-1") if isinstance(raw, bytes) and raw[:1] == b"/" else ""
    path = path or quote(request.path)
    query = request.query_string.decode("latin-1")
    return f"{path}?{query}" if query else path


def init_app(app: Quart) -> None:
    """Install the host check, the HTTPS redirect, the headers and proxy handling.

    Call it before other extensions so these hooks run before theirs: the CSRF check
    reads the body, and must not see a forged Host or a nameless form field, nor a
    request that is about to be sent to HTTPS.
    """
    app.before_request(check_host)
    config = settings.of(app)
    if config.production and config.trusted_proxy_hops and config.https_redirect:
        app.before_request(require_https)
    app.before_request(refuse_unnamed_fields)
    app.after_request(header_adder(security_headers(config.production)))
    app.after_request(close_ambiguous_framing)
    # Inside the proxy fix, so the host it checks is the one the proxy forwarded.
    # Quart's documented way to add ASGI middleware; mypy forbids assigning to a method.
    app.asgi_app = HostGuard(app.asgi_app, config.trusted_hosts)  # type: ignore[method-assign]
    trust_proxies(app)


def trust_proxies(app: Quart) -> None:
    """Trust ``X-Forwarded-*`` only from as many proxies as ``TRUSTED_PROXY_HOPS`` says.

    Without a trusted router in front, those headers are whatever the client typed, so
    by default (0) they are ignored and the client address is the socket's.
    """
    hops = settings.of(app).trusted_proxy_hops
    if hops:
        # Quart's documented way to add ASGI middleware; mypy forbids assigning to a method.
        app.asgi_app = ProxyFixMiddleware(  # type: ignore[method-assign]
            app.asgi_app, mode="legacy", trusted_hops=hops
        )
