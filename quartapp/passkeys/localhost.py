"""In development, send a page opened at 127.0.0.1 to the same page at ``localhost``.

Browsers offer passkeys only on a secure context whose host is a name: ``localhost``
counts, an IP address such as 127.0.0.1 never can be a WebAuthn RP ID. ``make run``
binds 127.0.0.1 (nothing outside the machine reaches it), and some people type that
address, so the pages with passkey controls link to the address where they work.
"""

from __future__ import annotations

from urllib.parse import urlunsplit

from quart import Quart, has_request_context, request

from .. import settings

LOOPBACK_ADDRESSES = frozenset({"127.0.0.1", "[::1]"})
# The pages with a passkey control: the sign-in page and adding a passkey.
PAGES = frozenset({"auth.login", "passkeys.new"})


def localhost_url() -> str | None:
    """This page's URL at ``localhost``, if opened at a loopback address in development."""
    if not has_request_context() or request.endpoint not in PAGES:
        return None
    if settings.current().production:
        return None
    name, port = request.host, ""
    if not name.endswith("]") and ":" in name:  # "[::1]" alone has no port
        name, _, port = name.rpartition(":")
    if name not in LOOPBACK_ADDRESSES:
        return None
    host = f"localhost:{port}" if port else "localhost"
    # The query as sent (request.url decodes it): ``next`` keeps its escapes.
    query = request.query_string.decode("ascii", "replace")
    return urlunsplit((request.scheme, host, request.path, query, ""))


def init_app(app: Quart) -> None:
    """Give the passkey pages ``passkey_localhost_url``."""

    @app.context_processor
    def passkey_localhost() -> dict[str, object]:
        return {"passkey_localhost_url": localhost_url()}
