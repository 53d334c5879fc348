"""Protections that wrap the whole app: proxy handling, the host check, HTTPS and headers.

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

import ipaddress
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from typing import cast
from urllib.parse import quote

from hypercorn.middleware import ProxyFixMiddleware
from hypercorn.typing import ASGIFramework, ASGIReceiveCallable, ASGISendCallable, Scope
from quart import Quart, redirect, request
from quart.wrappers import Response
from werkzeug.exceptions import BadRequest
from werkzeug.wrappers import Response as WerkzeugResponse

from .. import settings

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


UNTRUSTED = "untrusted.invalid"
# A name or an IPv4 address, or an IPv6 address in brackets, then an optional port.
HOST = re.compile(r"(?P<name>[a-z0-9.-]+|\[[0-9a-f:.]+\])(?::(?P<port>[0-9]{1,5}))?")
# One DNS label (RFC 1035 as relaxed by RFC 1123): letters, digits and inner hyphens.
LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
MAX_NAME_LENGTH = 253
# Trusted Host headers remembered by HostGuard (names, with or without a port).
KNOWN_HOSTS = 256

log = logging.getLogger("quartapp.security")
# A refused host is logged at most once per this many seconds, and so many distinct
# host names are remembered for that (the oldest is forgotten first): the names are
# attacker input, so memory must not grow with them.
REFUSAL_LOG_INTERVAL = 60.0
REFUSAL_LOG_HOSTS = 1000
# The longest part of a refused Host header that a log line repeats.
LOGGED_HOST_LENGTH = 100


def is_valid_name(name: str) -> bool:
    """Whether ``name`` (lower case, no port) is a well-formed DNS name or IP literal.

    Checked label by label, because werkzeug fails with a 500 on a name it cannot
    IDNA-encode (``a..example.com``, a label over 63 characters) and a wildcard entry
    would otherwise let such a name through.
    """
    if name.startswith("["):  # HOST only lets it through with its closing bracket
        try:
            ipaddress.IPv6Address(name[1:-1])
        except ValueError:
            return False
        return True
    if len(name) > MAX_NAME_LENGTH:
        return False
    return all(LABEL.fullmatch(label) for label in name.split("."))


def host_is_trusted(host: str, trusted: Iterable[str]) -> bool:
    """Whether a Host header names one of ``trusted`` (``.example.com``: any subdomain).

    Werkzeug's helper of the same name cuts trusted names at their first colon, so it
    can never match an IPv6 address such as ``::1``; this one compares names only, and
    only well-formed ones (see :func:`is_valid_name`).
    """
    match = HOST.fullmatch(host.lower())
    if match is None or not 0 < int(match["port"] or 80) < 65536:
        return False
    if not is_valid_name(match["name"]):
        return False
    name = match["name"].strip("[]")
    for entry in trusted:
        entry = entry.lower().strip("[]")
        if name == entry or (entry.startswith(".") and name.endswith(entry)):
            return True
    return False


class RefusedHosts:
    """Say which Host was refused, once a minute per name, in a bounded memory.

    A team adding a custom domain sees ``refused a request for host 'shop.example.com'``
    and knows which name to add to ``TRUSTED_HOSTS``; a client spraying names gets one
    line per name a minute, and at most ``REFUSAL_LOG_HOSTS`` names are remembered.
    """

    def __init__(
        self,
        interval: float = REFUSAL_LOG_INTERVAL,
        limit: int = REFUSAL_LOG_HOSTS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.interval = interval
        self.limit = limit
        self.clock = clock
        self.last_logged: OrderedDict[str, float] = OrderedDict()

    def refused(self, host: str, count: int) -> None:
        """Log that a request with ``host`` (one of ``count`` Host headers) was refused."""
        if count == 1:
            shown = loggable_host(host)
        else:
            shown = "(no Host header)" if count == 0 else f"({count} Host headers)"
        now = self.clock()
        last = self.last_logged.get(shown)
        if last is not None and now - last < self.interval:
            return
        self.last_logged[shown] = now
        self.last_logged.move_to_end(shown)
        while len(self.last_logged) > self.limit:
            self.last_logged.popitem(last=False)
        log.warning(
            "refused a request for host %s: not in TRUSTED_HOSTS; if the site is served "
            "there, add it to QUARTAPP_TRUSTED_HOSTS (logged once a minute per host)",
            shown,
        )


def loggable_host(host: str) -> str:
    """``host`` as a log line may show it: quoted, escaped and cut short.

    It is whatever the client sent, so control characters (a forged second log line)
    and anything outside printable ASCII are escaped, and its length is bounded.
    """
    cut = host[:LOGGED_HOST_LENGTH]
    text = ascii(cut)  # quotes it and escapes everything but printable ASCII
    return text + ("..." if len(host) > LOGGED_HOST_LENGTH else "")


class HostGuard:
    """ASGI middleware: swap a Host header that is not trusted for a harmless one.

    Quart binds its URL map to the Host before any error handling exists, so a name
    werkzeug cannot IDNA-encode (``a..b``) would end in a bare 500. Swapped for
    ``UNTRUSTED`` (a reserved name no site uses), the request routes normally and
    :func:`check_host` answers it with the site's 400 page.
    """

    def __init__(self, app: ASGIFramework, trusted: Iterable[str]) -> None:
        self.app = app
        self.trusted = list(trusted)
        self.refusals = RefusedHosts()
        # Host headers already found trusted: every request names one of a few, and
        # checking it again (a regex, then each label) was 2% of a /hello in the
        # profile. Only trusted ones are kept, so a client spraying names adds nothing.
        self.known: set[str] = set()

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        if scope["type"] in ("http", "websocket"):
            headers = scope["headers"]
            hosts = [value for name, value in headers if name.lower() == b"host"]
            host = hosts[0].decode("latin-1") if len(hosts) == 1 else ""
            if host in self.known:
                pass  # trusted already
            elif host_is_trusted(host, self.trusted):
                self.remember(host)
            else:
                self.refusals.refused(host, len(hosts))
                kept = [(name, value) for name, value in headers if name.lower() != b"host"]
                # A copy of an HTTP or WebSocket scope, so still one of the two.
                scope = cast(Scope, {**scope, "headers": [*kept, (b"host", UNTRUSTED.encode())]})
        await self.app(scope, receive, send)

    def remember(self, host: str) -> None:
        """Keep a trusted Host header, within :data:`KNOWN_HOSTS`."""
        if len(self.known) >= KNOWN_HOSTS:
            self.known.clear()
        self.known.add(host)


class UntrustedHost(BadRequest):
    """The Host header names a site this app does not serve."""

    description = "This site is not served at that address."


async def check_host() -> None:
    """Answer a request whose Host :class:`HostGuard` refused with the site's 400 page.

    Quart itself ignores ``TRUSTED_HOSTS``; without this, absolute URLs built from a
    forged Host (and cache poisoning that relies on them) would reach the views.
    """
    if request.host == UNTRUSTED:
        raise UntrustedHost()


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
