"""The host check: a request must name one of ``TRUSTED_HOSTS`` in its Host header.

:class:`HostGuard` wraps the app (inside the proxy fix, so it sees the host the proxy
forwarded) and swaps a refused Host for a reserved name, which :func:`check_host`
answers with the site's 400 page; :func:`.security.init_app` installs both.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import cast

from hypercorn.typing import ASGIFramework, ASGIReceiveCallable, ASGISendCallable, Scope
from quart import request
from werkzeug.exceptions import BadRequest

# Why a request is answered with the 400 page: a Host that is not ours becomes this
# reserved name (no site uses it), which routes normally and check_host refuses.
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
