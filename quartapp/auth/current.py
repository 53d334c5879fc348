"""Who is logged in on this request: ``current_user``, ``login_required`` and the hook
that loads the user.

The session cookie holds only a random login token. Each request looks the token up
in the ``logins`` table (:func:`load_logged_in_user`, :mod:`.logins`, through the
per-process :mod:`.login_cache`), so deleting the row (logout, ``users
revoke-sessions``, a password change, deleting the user) or its expiry ends that login
even for someone holding a copy of the cookie.

The current user is a typed value, :class:`~.logins.CurrentUser` (id, username and
login id), loaded once per request: :func:`current_user` is it or None, and
:func:`signed_in` is it in a view under :func:`login_required`. ``g.user`` holds the
same value for the templates.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from functools import wraps
from typing import ParamSpec, cast

from quart import Quart, current_app, g, redirect, request, session, url_for
from quart.typing import ResponseReturnValue
from quart.wrappers import Response

from ..db import db
from ..web.messages import flash
from ..web.navigation import requested_path
from ..web.speedups import CSRF_FIELD, renew_csrf_token
from . import last_seen, login_cache, logins, settings
from .logins import CurrentUser
from .signin import LOGIN_HELD_KEY, LOGIN_KEY, LOGIN_NAME_KEY, LOGIN_UNTIL_KEY

P = ParamSpec("P")

ANONYMOUS_ENDPOINTS = frozenset({"static", "health.healthz"})
LOGIN_FIRST = "You need to login first."
ENDED_ELSEWHERE = (
    "You were logged out because this session was ended from another device or the "
    "password changed."
)
SESSION_EXPIRED = "Your session has expired. Please sign in again."
SAFE_METHODS = frozenset({"GET", "HEAD"})


def current_user() -> CurrentUser | None:
    """The user this request is logged in as, or None (set by :func:`load_logged_in_user`)."""
    return cast("CurrentUser | None", g.get("user"))


def signed_in() -> CurrentUser:
    """The logged-in user, in a view under :func:`login_required` (which made sure of it)."""
    user = current_user()
    if user is None:
        raise RuntimeError("signed_in() outside a login_required view")
    return user


def login_required(
    view: Callable[P, Awaitable[ResponseReturnValue]],
) -> Callable[P, Awaitable[ResponseReturnValue]]:
    """Send anonymous visitors to the login page, then back here once logged in.

    A login that a feature's gate (the registry's ``login_gates``) held when it started,
    such as an account whose address is not confirmed, is sent to the gate's page.

    Put it *under* the route decorator, so the route registers the wrapped view::

        @bp.get("/hello")
        @login_required
        async def hello() -> ResponseReturnValue: ...
    """

    @wraps(view)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> ResponseReturnValue:
        if g.get("user") is None:
            # A login that just ended has said why (load_logged_in_user); only the
            # plain anonymous visitor needs telling to sign in.
            if not g.get("login_ended"):
                await flash(LOGIN_FIRST, "warning")
            return redirect(url_for("auth.login", next=requested_path()))
        held = session.get(LOGIN_HELD_KEY)
        if isinstance(held, str):
            return redirect(url_for(held))
        return await current_app.ensure_async(view)(*args, **kwargs)

    return wrapper


async def load_logged_in_user() -> None:
    """Set ``g.user`` from the session's login token, if that login is still live.

    A ``before_request`` hook, registered after the CSRF check by :func:`init_app`.
    """
    g.user = None
    token = session.get(LOGIN_KEY)
    # Static files and the health check never need the user; /healthz must answer
    # even while the database is slow, without waiting on this lookup first.
    if token is None or request.endpoint in ANONYMOUS_ENDPOINTS:
        return
    if not isinstance(token, str):
        _forget_login()
        return
    # Only a safe request may be answered from the cache: anything that changes state
    # reads the row, so it never acts for a login ended a moment ago elsewhere.
    status, g.user = await login_cache.lookup(
        db.store,
        login_cache.cache(),
        settings.current(),
        token,
        last_seen.pending(),
        fresh=request.method not in SAFE_METHODS,
    )
    if status is not logins.Status.VALID:
        # Ended elsewhere or expired: drop the stale token so the cookie says so too.
        until = session.get(LOGIN_UNTIL_KEY)
        _forget_login()
        message = ended_message(status, until, time.time())
        if message is not None:
            g.login_ended = True
            await flash(message, "warning")


def ended_message(status: logins.Status, until: object, now: float) -> str | None:
    """Why a login that the cookie still names is over, or None when that is unknown.

    The database forgets a row once it is past its absolute limit (``db prune``; an
    idle one is kept until then, so its lookup still says EXPIRED). So an unknown
    token whose login should still be live was ended: from the sessions page, by
    "log out everywhere else", a password change, ``users revoke-sessions`` or a
    deleted user. A cookie made before ``login_until`` existed gets no guess.
    """
    if status is logins.Status.EXPIRED:
        return SESSION_EXPIRED
    if not isinstance(until, int | float) or isinstance(until, bool):
        return None
    return ENDED_ELSEWHERE if now < until else SESSION_EXPIRED


def _forget_login() -> None:
    for key in (LOGIN_KEY, LOGIN_UNTIL_KEY, LOGIN_NAME_KEY, LOGIN_HELD_KEY):
        session.pop(key, None)


async def issue_csrf_token(response: Response) -> Response:
    """Put a new login's CSRF token in the cookie that starts it.

    Every logged-in page has the logout form, whose token lives in the session. Made
    when the first page renders it, the token would cost that page a new cookie, and
    a client that keeps only the login's cookie would be sent one on every page.
    """
    if LOGIN_KEY in session and CSRF_FIELD not in session:
        renew_csrf_token()  # not the one cached for the session cleared at login
    return response


def init_app(app: Quart) -> None:
    """Load the user before every view, after the CSRF check; issue a login's CSRF token."""
    app.before_request(load_logged_in_user)
    app.after_request(issue_csrf_token)
