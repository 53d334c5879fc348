"""The CSRF check: where a POST came from, then its token (Quart-WTF's, widened).

:class:`SameOriginCSRFProtect` is Quart-WTF's CSRF check, with its HTTPS rule (a
same-origin Referer) widened as browsers and Django do: a same-origin ``Origin``, or
``Sec-Fetch-Site: same-origin``, stands in for a Referer that a privacy tool stripped.
Where the post came from is checked before its token, and each refusal says which it
was (``web.errors`` words them).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from quart import current_app, g, request
from quart_wtf import CSRFProtect
from quart_wtf.csrf import CSRFError
from quart_wtf.utils import validate_csrf
from wtforms import ValidationError

CROSS_SITE = "The request came from another site."
NO_SOURCE = "The request has no Origin, Referer or Sec-Fetch-Site header."
DEFAULT_PORTS = {"http": 80, "https": 443}


def origin_of(url: str) -> tuple[str, str | None, int | None] | None:
    """The (scheme, host, port) a URL or an Origin header names; None if it is malformed."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:  # a port out of range or not a number, a bad IPv6 literal
        return None
    return parts.scheme, parts.hostname, port or DEFAULT_PORTS.get(parts.scheme)


def post_source_problem() -> str | None:
    """Why this HTTPS post cannot be shown to come from this site's pages, or None.

    ``Origin`` decides when the browser sent a real one; ``null`` (sent under a
    no-referrer policy) says nothing, so the Referer is next, then ``Sec-Fetch-Site``.
    Browsers never let a page set any of the three.
    """
    here = origin_of(f"https://{request.host}")
    origin = request.headers.get("Origin")
    if origin and origin != "null":
        return None if here is not None and origin_of(origin) == here else CROSS_SITE
    referrer = request.headers.get("Referer")
    if referrer:
        return None if here is not None and origin_of(referrer) == here else CROSS_SITE
    site = request.headers.get("Sec-Fetch-Site")
    if site == "same-origin":
        return None
    return CROSS_SITE if site in ("same-site", "cross-site") else NO_SOURCE


class SameOriginCSRFProtect(CSRFProtect):
    """Quart-WTF's CSRF check, taking a same-origin ``Origin`` where it wanted a Referer.

    Over HTTPS Quart-WTF refuses any post without a same-origin Referer, so a browser
    whose privacy tool strips it could never sign in. This checks the post's source as
    :func:`post_source_problem` says (under ``WTF_CSRF_SSL_STRICT``, as before), then
    the token exactly as Quart-WTF does.

    Upstream: Quart-WTF's ``protect`` accepting ``Origin`` and ``Sec-Fetch-Site`` (as
    Django's CsrfViewMiddleware does) would remove it.
    """

    async def protect(self) -> None:
        """Refuse a post from elsewhere, then one without this session's valid token."""
        config = current_app.config
        if request.method not in config["WTF_CSRF_METHODS"]:
            return
        if request.is_secure and config["WTF_CSRF_SSL_STRICT"]:
            problem = post_source_problem()
            if problem is not None:
                raise CSRFError(problem)
        try:
            validate_csrf(await self._get_csrf_token())
        except ValidationError as error:
            raise CSRFError(error.args[0]) from None
        g.csrf_valid = True  # as Quart-WTF marks a checked request
