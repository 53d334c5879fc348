"""quartapp: the Flask tutorials' login flow as an async Quart app.

Importing ``quartapp`` builds nothing and imports no framework: ``create_app`` imports
the app's modules when it is called, and ``app`` (what ``hypercorn quartapp:app``
serves) is :class:`quartapp.asgi.LazyApp`, which calls ``create_app`` on first use.
So ``python -m quartapp.keys`` runs on a bare Python.

A request goes: hypercorn -> ``asgi.LazyApp`` -> (ProxyFixMiddleware, when configured)
-> ``web.hosts.HostGuard`` -> ``web.logs.AccessLog`` (one JSON line per request, when
``ACCESS_LOG`` is on) -> Quart, whose ``before_request`` hooks run in the order they
were added: ``web.hosts.check_host`` (refuses an untrusted Host),
``web.security.require_https`` (in production behind a trusted proxy: plain HTTP gets a
308 to HTTPS), ``web.security.refuse_unnamed_fields``, CSRFProtect's ``csrf_protect``
(``web.csrf.SameOriginCSRFProtect``: where a POST came from, then its token),
then ``auth.current.load_logged_in_user`` (the login record in ``auth.logins``,
through ``auth.login_cache``; read with ``auth.current.current_user()``) -> the view in
``pages.views`` (/, /welcome, /hello), ``auth.views`` (/login, /logout),
``account.views`` (/account, /account/password, /account/sessions), ``account.leaving``
(/account/export, /account/delete), ``auth.reauth``
(/login/confirm, before a sensitive change), ``twofactor.views``
(/account/two-factor), ``twofactor.login`` (/login/two-factor, a login's second step),
``passkeys.views`` (/account/passkeys), ``passkeys.signin`` (/login/passkey,
/login/confirm/passkey), ``mail.views`` (/reset_password_request, /reset_password,
/account/email), ``signup.views`` (/register, /confirm_email), ``web.health``
(/healthz) or ``metrics`` (/metrics). Every way of proving who one is ends in
``auth.signin``, which starts the login. Errors of every kind end in ``web.errors``.
Mail is never sent in a request: a flow writes it to the outbox in its transaction,
and ``mail.sender`` delivers it after commit.
"""

from __future__ import annotations

import gc
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

# Bound here, not through a module ``__getattr__`` (PEP 562): hypercorn 0.18 finds
# ``app`` with ``eval("app", vars(module))``, which reads the module's dict only.
# ``asgi`` imports nothing but the standard library, so this stays cheap.
from .asgi import app

if TYPE_CHECKING:
    from quart import Quart

    from .settings import Part

__all__ = ["app", "create_app", "load_config", "setting_parts"]


# The features, in the order they plug in. Each is a module or package of quartapp whose
# ``init_app(app)`` registers its blueprints, hooks and services, and what it adds to the
# features below it through their registries (auth's: ``auth/registry.py``). Adding a
# feature is a folder, a migration and a line here.
FEATURES = (
    "metrics",  # first: its timer starts before every other hook
    "audit",
    "auth",
    "account",
    "twofactor",
    "passkeys",
    "mail",
    "signup",  # after mail: it sends through mail's outbox
    "pages",
)


def create_app(config_overrides: Mapping[str, Any] | None = None) -> Quart:
    """Build the app: load and check settings, the shared base, then each of FEATURES."""
    # Building is mostly imports and objects that live as long as the app (modules,
    # models, URL rules), so the collector finds no garbage here, yet its runs walked
    # that growing heap again and again: about 0.15 s of a served worker's ~1.3 s of
    # start-up CPU. It runs again once the app is built.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _build(config_overrides)
    finally:
        if collecting:
            gc.enable()


def _build(config_overrides: Mapping[str, Any] | None) -> Quart:
    # Imported here, as flaskr does, so that importing the package stays cheap.
    from importlib import import_module

    from quart import Quart

    from . import bootstrap, cli, settings
    from .db import db, schema
    from .web import csrf, errors, fields, health, logs, security, sessions, speedups

    parts = setting_parts()
    try:
        config = bootstrap.prepare_instance(config_overrides, parts)
        make_instance_folder(config["INSTANCE_PATH"])
    except settings.ConfigError as error:
        cli.refuse(error)  # within a `quart --app quartapp ...` command: one Error: line
        raise
    app = Quart(
        __name__,
        instance_path=config["INSTANCE_PATH"],
        template_folder=str(settings.ROOT / "templates"),
        static_folder=str(settings.ROOT / "static"),
    )
    # Quart and Quart-WTF read their own keys (SECRET_KEY, SESSION_COOKIE_*, WTF_CSRF_*)
    # here; the app reads the typed sections, built once from the same values.
    app.config.update(config)
    settings.install(app, config, parts)
    # app.logger ("quartapp") gets Quart's stderr handler; the audit log and the
    # first-run admin write to its children at INFO, which must not be dropped.
    app.logger.setLevel(settings.of(app).log_level)

    # The shared base, which knows no feature. Before security: its proxy fix and host
    # guard wrap the access log, so the log sees the client address the app sees, and
    # every request, refused hosts included.
    logs.init_app(app)
    security.init_app(app)  # first hooks: the host check runs before any other hook
    schema.init_app(app)  # pending migrations, in development, before the pool opens
    db.init_app(app)
    csrf.SameOriginCSRFProtect(app)  # checks every POST, before the features' hooks
    sessions.init_app(app)
    errors.init_app(app)
    fields.init_app(app)  # the form macros' field writers
    app.register_blueprint(health.bp)

    for name in FEATURES:
        import_module(f".{name}", __name__).init_app(app)

    cli.init_app(app)
    app.before_serving(bootstrap.create_initial_admin_for_app)
    app.before_serving(freeze_startup_objects)  # after every other startup hook
    speedups.init_app(app)  # last: it rewrites what the blueprints registered
    return app


def setting_parts() -> tuple[Part, ...]:
    """Each feature's rows of the settings table: ``PART`` of its ``settings.py``, if any.

    The settings package names no feature, so its loader is handed these.
    """
    from importlib import import_module

    return tuple(
        import_module(f".{name}.settings", __name__).PART
        for name in FEATURES
        if (Path(__file__).parent / name / "settings.py").is_file()
    )


def load_config(overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The checked settings of the base and every feature (:func:`settings.load_config`)."""
    from . import settings

    return settings.load_config(overrides, setting_parts())


def load_models() -> None:
    """Import every feature's tables (``<feature>/models.py``) into ``db.Base.metadata``.

    For what needs the whole schema without building an app: Alembic's comparison of
    the models with the migrations (``migrations/env.py``) and the tests. An app
    imports each feature's models when it uses them.
    """
    from importlib import import_module

    for name in FEATURES:
        if (Path(__file__).parent / name / "models.py").is_file():
            import_module(f".{name}.models", __name__)


# Middle-generation collections between two full ones (Python's default: 10).
FULL_COLLECTION_AFTER = 100


async def freeze_startup_objects() -> None:
    """Move everything alive once the app has started out of the garbage collector's sight.

    The modules, templates, SQLAlchemy's mappers and compiled statements are a few
    hundred thousand objects that live as long as the process. Left in the oldest
    generation, each full collection walks them all: about 100 ms with the event loop
    stopped, every few thousand requests, and every request in flight waits for it
    (``/hello``'s p99, see docs/performance.md). Frozen, a full collection walks only
    what requests have left behind. Collected first, so no garbage is frozen with them.
    Not under TESTING: a test process starts many apps, and would keep every one.
    """
    from quart import current_app

    if current_app.testing:
        return
    gc.collect()
    gc.freeze()
    # Few full collections: with the startup objects frozen, the oldest generation is
    # small, so the default rule (after 10 middle collections, once it has grown by a
    # quarter) ran one every ~3 s under load, each 50-130 ms with the loop stopped.
    # After 100 middle ones, 6 instead of 33 in the same 100 s, and each collects a few
    # thousand objects (docs/performance.md).
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, FULL_COLLECTION_AFTER)


def make_instance_folder(path: str) -> None:
    """Create the instance folder 0700: it holds secrets and, by default, the database."""
    from . import files
    from .settings import ConfigError

    try:
        files.make_private_dir(Path(path))
    except OSError as error:
        raise ConfigError(
            f"cannot create the instance folder {path}: {error.strerror or error}; "
            "set QUARTAPP_INSTANCE_PATH to a folder this user can write"
        ) from None
