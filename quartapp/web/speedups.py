"""Where quartapp reaches into its frameworks: each patch, and the change that would end it.

Most are speed-ups, each for a measured cost (its commit names the figures); two lean
on a framework's private names (Quart-WTF's per-request token cache, Quart's flash
queue). Each says which upstream change would let it go, and tests/web/test_speedups.py
checks that each still does what it claims, so an upgrade that breaks one fails there.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any, cast

from itsdangerous import URLSafeTimedSerializer
from jinja2 import Template
from markupsafe import Markup, escape
from quart import Quart, g, has_request_context, request, session
from quart.sessions import SecureCookieSessionInterface
from quart_wtf.utils import generate_csrf

# Fixed links kept per process: a page has about ten; this bounds odd root paths.
FIXED_URLS = 256
# Coroutine functions remembered by ensure_async: the app's hooks and views are about
# forty; this bounds callers that hand it a new function each time.
KNOWN_ASYNC = 1024
# Quart-WTF's session key for the raw CSRF token, and the ``g`` attribute where it
# caches the signed token for the rest of the request (its WTF_CSRF_FIELD_NAME default).
CSRF_FIELD = "csrf_token"
# Quart's session key for flashed messages (``flash``, ``get_flashed_messages``).
FLASHES = "_flashes"


def init_app(app: Quart) -> None:
    """Apply the speed-ups that patch the app itself (after every blueprint is in)."""
    run_context_processors_inline(app)
    render_templates_sync(app)
    cache_fixed_urls(app)
    remember_coroutine_functions(app)


class SyncTemplate(Template):
    """A template compiled for Jinja's sync path, which Quart still awaits as before.

    Quart renders every template through ``render_async``/``generate_async``; this runs
    the sync code in place, so views, Quart-WTF and the error handlers keep calling
    ``quart.render_template`` and its signals are sent as before.
    """

    async def render_async(self, *args: Any, **kwargs: Any) -> str:
        return self.render(*args, **kwargs)

    async def generate_async(self, *args: Any, **kwargs: Any) -> AsyncGenerator[str, object]:
        for chunk in self.generate(*args, **kwargs):
            yield chunk


def render_templates_sync(app: Quart) -> None:
    """Compile the app's templates for Jinja's sync path instead of its async one.

    Quart turns on Jinja's async mode, so every block, macro, loop and call in a
    template becomes an async generator or an await, even where nothing is awaited:
    the anonymous home page rendered in 655 us that way and in 331 us on the sync
    path (same context, same machine), and rendering is most of ``/`` and a sixth of
    ``/hello``. Nothing our templates call is async (``url_for``, ``csrf_token``,
    ``get_flashed_messages``, the form-field renderer and the ``*_links`` globals are
    all plain functions; tests/web/test_speedups.py checks it), so nothing is lost.

    Upstream: Quart offering a sync Jinja environment (``enable_async`` as an option
    rather than forced) would remove it.
    """
    environment = app.jinja_env
    environment.is_async = False  # read by Jinja's code generator at compile time
    environment.template_class = SyncTemplate
    if environment.cache is not None:  # templates compiled async before now, if any
        environment.cache.clear()


def remember_coroutine_functions(app: Quart) -> None:
    """Let ``app.ensure_async`` remember which functions are already coroutine functions.

    Quart asks ``inspect.iscoroutinefunction`` of every hook, context processor and
    view on every request (sixteen on a logged-in ``/hello``), about 4% of it in the
    profile; the answer never changes for a function. Sync functions are wrapped as before.

    Upstream: Quart checking each hook once when it is registered (as it could, since
    ``before_request`` and the rest already see every function) would remove it.
    """
    check = app.ensure_async
    known: set[Callable[..., Any]] = set()

    def ensure_async(func: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
        if func in known:
            return func
        wrapped = check(func)
        if wrapped is func:  # a coroutine function, returned as it is
            if len(known) >= KNOWN_ASYNC:
                known.clear()
            known.add(func)
        return wrapped

    # Quart's documented override point; mypy forbids assigning to a method.
    app.ensure_async = ensure_async  # type: ignore[method-assign]


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
    links: dict[tuple[str, str, str, bool], Markup] = {}

    def nav_link(target: str, text: str, current: str | None) -> Markup:
        """A nav link to ``target``, marked as the current page when it is ``current``.

        The whole link is kept like the URL: ``base.html`` has four on every page, and
        as a Jinja macro each cost more than the URL did (a macro call in an async
        template is a new context and a coroutine).
        """
        here = target == current
        if not has_request_context():
            return _nav_link(url_for(target), text, here)
        key = (request.root_path, target, text, here)
        link = links.get(key)
        if link is None:
            if len(links) >= FIXED_URLS:
                links.clear()
            link = links[key] = _nav_link(url_for(target), text, here)
        return link

    app.jinja_env.globals["nav_link"] = nav_link


def _nav_link(url: str, text: str, here: bool) -> Markup:
    current = ' aria-current="page"' if here else ""
    # Safe: the URL and the text are escaped; the rest is this literal.
    return Markup(f'<a href="{escape(url)}"{current}>{escape(text)}</a>')  # noqa: S704


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
            processor
            if inspect.iscoroutinefunction(processor)
            # Not a coroutine function, so the sync member of the union.
            else _inline(cast(Callable[[], dict[str, Any]], processor))
            for processor in processors
        ]


def _inline(processor: Callable[[], dict[str, Any]]) -> Callable[[], Awaitable[dict[str, Any]]]:
    @functools.wraps(processor)
    async def run_in_place() -> dict[str, Any]:
        return processor()

    return run_in_place


class CachedSigner(SecureCookieSessionInterface):
    """Quart's signed-cookie sessions, with the serializer kept while the keys stay the same.

    Quart builds an ``itsdangerous`` serializer each time it opens or saves a session,
    and each one serializes an empty dict to learn whether it makes text: two of those
    a request were ~10% of an authenticated /hello in the profile (issue 8).

    Upstream: ``SecureCookieSessionInterface.get_signing_serializer`` keeping its
    serializer per (keys, salt) (Flask builds one per call too) would remove it.
    """

    def __init__(self) -> None:
        self._signer: tuple[tuple[str | bytes, ...], URLSafeTimedSerializer] | None = None

    def get_signing_serializer(self, app: Quart) -> URLSafeTimedSerializer | None:
        """The serializer for the app's current keys (None without a secret key)."""
        if not app.secret_key:
            return None
        keys = (*app.config["SECRET_KEY_FALLBACKS"], app.secret_key)
        if self._signer is None or self._signer[0] != keys:
            signer = super().get_signing_serializer(app)
            assert signer is not None
            self._signer = (keys, signer)
        return self._signer[1]


def drop_csrf_token() -> None:
    """Forget the session's CSRF token and the signed copy cached for this request.

    The next form or :func:`renew_csrf_token` then makes a new one (at a login or a
    password change, so a token seen before it is worth nothing after).
    """
    session.pop(CSRF_FIELD, None)
    g.pop(CSRF_FIELD, None)


def renew_csrf_token() -> None:
    """Make the session's CSRF token now, for the session as it is, not as it began.

    Quart-WTF caches the signed token on ``g`` for the request; after ``session.clear()``
    at login that copy belongs to the old session, so it is dropped first.

    Upstream: Quart-WTF's ``generate_csrf`` checking that its cached token still matches
    the session's raw one would remove the ``g.pop``.
    """
    g.pop(CSRF_FIELD, None)
    generate_csrf()
