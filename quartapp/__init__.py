"""quartapp: the Flask tutorials' login flow as an async Quart app.

A request goes: hypercorn -> (ProxyFixMiddleware, when configured) -> ``HostGuard`` ->
``logs.AccessLog`` (one JSON line per request, when ``ACCESS_LOG`` is on) -> Quart,
whose ``before_request`` hooks run in the order they were added:
``security.check_host`` (refuses an untrusted Host), ``security.refuse_unnamed_fields``,
CSRFProtect's ``csrf_protect`` (checks POSTs), then ``auth.load_logged_in_user`` (sets
``g.user``) -> the view in ``pages`` (/, /welcome, /hello), ``auth`` (/login, /logout),
``account`` (/account/password, /account/sessions) or ``health`` (/healthz). Errors of
every kind end in ``errors``.
"""

from __future__ import annotations

import functools
import inspect
import multiprocessing
import signal
import sys
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, cast

from hypercorn.typing import ASGIReceiveCallable, ASGISendCallable, Scope
from quart import Quart, has_request_context, request
from quart_wtf import CSRFProtect

from . import bootstrap, cli, files, metrics
from .account import views as account
from .auth import login_cache, passwords, prune
from .auth import views as auth
from .db import db, schema
from .settings import ROOT, ConfigError, load_config
from .web import errors, health, logs, pages, security, sessions

csrf = CSRFProtect()
# Fixed links kept per process: a page has about ten; this bounds odd root paths.
FIXED_URLS = 256


def create_app(config_overrides: Mapping[str, Any] | None = None) -> Quart:
    """Build the app: load and check settings, then bind extensions and blueprints."""
    config = load_config(config_overrides)
    make_instance_folder(config["INSTANCE_PATH"])
    app = Quart(
        __name__,
        instance_path=config["INSTANCE_PATH"],
        template_folder=str(ROOT / "templates"),
        static_folder=str(ROOT / "static"),
    )
    app.config.update(config)
    # app.logger ("quartapp") gets Quart's stderr handler; the audit log and the
    # first-run admin write to its children at INFO, which must not be dropped.
    app.logger.setLevel(config["LOG_LEVEL"])

    # Before security: its proxy fix and host guard wrap the access log, so the log
    # sees the client address the app sees, and every request, refused hosts included.
    logs.init_app(app)
    security.init_app(app)  # first hooks: the host check runs before any other hook
    schema.init_app(app)  # pending migrations, in development, before the pool opens
    db.init_app(app)
    login_cache.init_app(app)  # after the database: its file exists by then
    prune.init_app(app)
    passwords.init_app(app)
    csrf.init_app(app)
    sessions.init_app(app)
    errors.init_app(app)
    metrics.init_app(app)
    cli.init_app(app)

    app.register_blueprint(pages.bp)
    app.register_blueprint(auth.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(account.bp)

    app.before_serving(bootstrap.create_initial_admin_for_app)
    run_context_processors_inline(app)
    cache_fixed_urls(app)
    return app


def cache_fixed_urls(app: Quart) -> None:
    """Let templates build each fixed link once per process instead of on every render.

    ``base.html`` builds the same links on every page (nav, stylesheet, favicon,
    footer); Werkzeug's URL building was about a tenth of a page. A link with no
    arguments but a static file's name depends only on the root path, so it is kept
    per root path; anything else (``next=...``) is built as before.
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


def make_instance_folder(path: str) -> None:
    """Create the instance folder 0700: it holds secrets and, by default, the database."""
    try:
        files.make_private_dir(Path(path))
    except OSError as error:
        raise ConfigError(
            f"cannot create the instance folder {path}: {error.strerror or error}; "
            "set QUARTAPP_INSTANCE_PATH to a folder this user can write"
        ) from None


class LazyApp:
    """The ASGI app behind ``hypercorn quartapp:app``, built on first use.

    hypercorn reads ``app`` straight out of the module, so it must exist at import; but
    building it reads the environment and files, which importing ``create_app`` in tests
    must not do. So ``app`` is this small stand-in, and the real app is made when
    hypercorn first calls it (at lifespan startup) or when an attribute is read.
    """

    def __init__(self) -> None:
        self._app: Quart | None = None

    def load(self) -> Quart:
        """The real app, created once."""
        if self._app is None:
            self._app = create_app()
        return self._app

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        if scope["type"] == "lifespan":
            keep_serving_on_sigterm()
        try:
            real = self.load()
        except ConfigError as error:
            # Refuse to start with one line naming the fix, and tell hypercorn the
            # startup failed so it exits instead of serving without the app.
            print(f"quartapp: refusing to start: {error.message}", file=sys.stderr)
            if scope["type"] == "lifespan":
                await receive()
                await send({"type": "lifespan.startup.failed", "message": error.message})
                return
            raise
        await real(scope, receive, send)

    def __getattr__(self, name: str) -> Any:
        # hypercorn probes the app with inspect (``__name__``, ``__code__``...) when it
        # imports it; building the app for those would raise a config error there, as a
        # traceback, instead of as the one-line lifespan failure above.
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        return getattr(self.load(), name)


def keep_serving_on_sigterm() -> None:
    """In a hypercorn worker process, leave SIGTERM to hypercorn's parent process.

    A PaaS stops a dyno by sending SIGTERM to every process in it. hypercorn's parent
    turns its copy into a graceful shutdown of all workers (``--graceful-timeout``), but
    a worker that dies of its own copy drops the logins it is serving. With workers=0
    there is no parent, hypercorn handles the signal itself, and nothing is changed.
    """
    if multiprocessing.parent_process() is not None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)


app = LazyApp()

__all__ = ["app", "create_app"]
