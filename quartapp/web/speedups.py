"""Where quartapp works around its frameworks for speed: each patch, and what would end it.

Every function here changes how Quart, Quart-WTF or itsdangerous do something, for a
measured cost (the commit of each names its figures). Each says which upstream change
would let it go; tests/test_speedups.py checks that each still does what it claims.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from quart import Quart, has_request_context, request

# Fixed links kept per process: a page has about ten; this bounds odd root paths.
FIXED_URLS = 256


def init_app(app: Quart) -> None:
    """Apply the speed-ups that patch the app itself (after every blueprint is in)."""
    run_context_processors_inline(app)
    cache_fixed_urls(app)


def cache_fixed_urls(app: Quart) -> None:
    """Let templates build each fixed link once per process instead of on every render.

    ``base.html`` builds the same links on every page (nav, stylesheet, favicon,
    footer); Werkzeug's URL building was about a tenth of a page. A link with no
    arguments but a static file's name depends only on the root path, so it is kept
    per root path; anything else (``next=...``) is built as before.

    Upstream: a cache in Werkzeug's ``MapAdapter.build`` for argument-free rules (or
    Quart's ``url_for`` keeping the adapter's result per endpoint) would remove it.
    """
    build = app.url_for
    built: dict[tuple[str, str, str | None], str] = {}

    def url_for(endpoint: str, **values: Any) -> str:
        if values.keys() - {"filename"} or not has_request_context():
            return build(endpoint, **values)
        key = (request.root_path, endpoint, values.get("filename"))
        url = built.get(key)
        if url is None:
            if len(built) >= FIXED_URLS:  # root paths come from the server; stay bounded
                built.clear()
            url = built[key] = build(endpoint, **values)
        return url

    app.jinja_env.globals["url_for"] = url_for


def run_context_processors_inline(app: Quart) -> None:
    """Make the sync template context processors async, so Quart runs them in place.

    Quart runs a sync processor in a worker thread, and every render has two: Quart-WTF's
    ``csrf_token`` and the default one each blueprint registers. They only read ``g``,
    ``request`` and ``session``; the two thread hops cost more than all the rest of a
    template's context (bench: anonymous ``/`` and ``/hello``, see the commit).

    Upstream: Quart calling sync context processors directly (as Flask does) instead of
    through ``run_sync``, or registering its own default processor as async, and
    Quart-WTF's ``csrf_token`` processor being async, would remove it.
    """
    for processors in app.template_context_processors.values():
        processors[:] = [
            processor if inspect.iscoroutinefunction(processor) else _inline(processor)
            for processor in processors
        ]


def _inline(processor: Callable[[], dict[str, Any]]) -> Callable[[], Awaitable[dict[str, Any]]]:
    @functools.wraps(processor)
    async def run_in_place() -> dict[str, Any]:
        return processor()

    return run_in_place
