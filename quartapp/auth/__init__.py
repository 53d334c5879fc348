"""Who is logged in: everything between a password and the current user.

- ``current``: the current user (typed), ``login_required`` and the per-request hook
  that loads the user;
- ``views``: the ``auth`` blueprint (``/login``, ``/login/device``, ``/logout``);
  ``errors``, its forms' own 429, 503 and expired-form answers;
- ``reauth``: ``fresh_login_required``, ``strong_login_required`` and ``/login/confirm``;
- ``signin``: starting a login once the user has proved who they are, by any method;
- ``registry``: what other features plug into signing in (second steps, confirmations,
  strong factors, login methods, what ends with a login, pruners);
- ``logins`` (the login record: one row per logged-in browser), ``login_cache`` and
  ``login_listener`` (its per-process cache, kept fresh on PostgreSQL by NOTIFY),
  ``last_seen`` (its ``last_seen`` times, written in background batches);
- ``credentials`` (checking a username and password, throttled), ``throttle``,
  ``devices`` (trusted-device cookies and codes), ``passwords`` (argon2 off the event
  loop), ``ratings`` (zxcvbn, bounded), ``users`` (user records and the password
  policy), ``forms`` and ``prune`` (deleting expired logins and stale counters).

Second factors (``quartapp.twofactor``) and passkeys (``quartapp.passkeys``) are
features of their own that plug in through :mod:`.registry` and end in this one: a
login record, through ``signin.start_session``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from quart import Quart


def init_app(app: Quart) -> None:
    """Plug signing in into the app: its hooks, services, blueprints and error pages.

    Called after the CSRF check is installed, so the user is loaded after it.
    """
    from quart import session

    from ..web import errors
    from . import (
        credentials,
        current,
        forms,
        last_seen,
        login_cache,
        passwords,
        prune,
        reauth,
        registry,
        views,
    )
    from . import errors as auth_errors
    from .credentials import LockedOut
    from .signin import LOGIN_KEY, LOGIN_NAME_KEY

    plugged = registry.registry(app)  # made before any feature registers with it
    app.jinja_env.globals["login_links"] = plugged.login_links
    app.jinja_env.globals["account_links"] = plugged.account_links
    current.init_app(app)
    login_cache.init_app(app)  # after the database: its file exists by then
    last_seen.init_app(app)
    prune.init_app(app)
    passwords.init_app(app)
    credentials.init_app(app)
    app.jinja_env.globals["csrf_token"] = forms.csrf_token  # reuses signatures (forms.py)
    app.register_blueprint(views.bp)
    app.register_blueprint(reauth.bp)
    app.register_error_handler(LockedOut, auth_errors.handle_locked_out)

    def unchecked_name() -> str | None:
        if not isinstance(session.get(LOGIN_KEY), str):
            return None
        name = session.get(LOGIN_NAME_KEY)
        return name if isinstance(name, str) else ""

    hooks = errors.page_hooks(app)
    hooks.identify = current.load_logged_in_user
    hooks.unchecked_name = unchecked_name
