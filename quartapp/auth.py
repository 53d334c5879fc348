"""Logging in and out: the ``auth`` blueprint and the ``login_required`` decorator.

The session cookie holds only a random login token. Each request looks the token up
in the ``logins`` table (:func:`load_logged_in_user`), so deleting the row (logout,
``users revoke-sessions``, a password change, deleting the user) ends that login even
for someone holding a copy of the cookie.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from functools import wraps
from typing import ParamSpec

from quart import (
    Blueprint,
    abort,
    current_app,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from quart.typing import ResponseReturnValue
from werkzeug.exceptions import TooManyRequests

from . import audit, throttle, users
from .db import db
from .forms import LoginForm
from .messages import flash
from .passwords import passwords

bp = Blueprint("auth", __name__)

P = ParamSpec("P")

LOGIN_KEY = "login"
# When the login started and when it was last seen, in Unix seconds: the server-side
# idle and absolute limits are enforced from these, whatever the cookie's own expiry.
STARTED_KEY, SEEN_KEY = "login_started", "login_seen"
# Refreshing SEEN on every request would re-send the cookie every time; a minute's
# precision is plenty for a 30-minute idle limit.
SEEN_RESOLUTION = 60
INVALID_CREDENTIALS = "Invalid Credentials. Please try again."
FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})


def login_required(
    view: Callable[P, Awaitable[ResponseReturnValue] | ResponseReturnValue],
) -> Callable[P, Awaitable[ResponseReturnValue]]:
    """Send anonymous visitors to the login page, then back here once logged in.

    Put it *under* the route decorator, so the route registers the wrapped view::

        @bp.get("/hello")
        @login_required
        async def hello() -> ResponseReturnValue: ...
    """

    @wraps(view)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> ResponseReturnValue:
        if g.get("user") is None:
            await flash("You need to login first.", "warning")
            return redirect(url_for("auth.login", next=requested_path()))
        return await current_app.ensure_async(view)(*args, **kwargs)

    return wrapper


def requested_path() -> str:
    """The path and query of this request, to come back to after logging in."""
    query = request.query_string.decode("latin-1")
    return f"{request.path}?{query}" if query else request.path


def safe_next(target: str | None) -> str | None:
    """``target`` if it is a path on this site, else None.

    Browsers read ``//host``, ``/\\host`` and URLs with tabs or newlines in them as other
    sites, so anything but a plain absolute path is refused. A string that starts with
    a single ``/`` has no scheme and no host, so nothing else needs parsing.
    """
    if not target or len(target) > 2048 or not target.startswith("/"):
        return None
    if target.startswith("//") or "\\" in target:
        return None
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in target):
        return None
    return target


@bp.before_app_request
async def load_logged_in_user() -> None:
    """Set ``g.user`` from the session's login token, if that login is still valid."""
    g.user = None
    token = session.get(LOGIN_KEY)
    if request.endpoint == "static" or token is None:
        return
    if not isinstance(token, str) or _expired():
        await _end_login(token, expired=isinstance(token, str))
        return
    async with db.session() as dbs:
        g.user = await users.user_for_login(dbs, token)
    if g.user is None:
        # The login was ended elsewhere; drop the stale token so the cookie says so too.
        _forget_login()
        return
    now = int(time.time())
    if now - session[SEEN_KEY] >= SEEN_RESOLUTION:
        session[SEEN_KEY] = now


def _expired() -> bool:
    """Whether the login has been idle, or alive, longer than the server allows."""
    started, seen = session.get(STARTED_KEY), session.get(SEEN_KEY)
    if not isinstance(started, int) or not isinstance(seen, int):
        return True
    config = current_app.config
    if session.permanent:
        idle = lifetime = config["REMEMBER_ME_DAYS"] * 86400
    else:
        idle = config["SESSION_IDLE_MINUTES"] * 60
        lifetime = config["SESSION_MAX_HOURS"] * 3600
    now = time.time()
    return now - seen > idle or now - started > lifetime


async def _end_login(token: object, *, expired: bool) -> None:
    """Delete the login's row, if any, and its keys in the session."""
    if isinstance(token, str):
        async with db.session() as dbs:
            await users.end_login(dbs, token)
    _forget_login()
    if expired:
        await flash("Your session has expired. Please log in again.", "warning")


def _forget_login() -> None:
    for key in (LOGIN_KEY, STARTED_KEY, SEEN_KEY):
        session.pop(key, None)


@bp.route("/login", methods=["GET", "POST"])
async def login() -> ResponseReturnValue:
    """Show the login form and log the user in when it is valid."""
    next_url = safe_next(request.args.get("next"))
    if g.user is not None:
        return redirect(url_for("pages.hello"))
    if request.method == "POST" and request.mimetype not in FORM_TYPES:
        abort(415)
    form = await LoginForm.create_form()
    error = None
    if await form.validate_on_submit():
        response = await _attempt_login(form, next_url)
        if response is not None:
            return response
        error = INVALID_CREDENTIALS
    return await render_template("auth/login.html", form=form, error=error, next=next_url)


async def _attempt_login(form: LoginForm, next_url: str | None) -> ResponseReturnValue | None:
    """Check the credentials under the throttle; a response unless they were wrong."""
    username, password = form.username.data, form.password.data
    remember = bool(form.remember_me.data)
    address, config = request.remote_addr, current_app.config
    async with db.session() as dbs:
        lockout = await throttle.check(dbs, config, username, address)
        if lockout is not None:
            # Refused before any hashing: a correct password during a lockout is refused
            # too, or the lockout would confirm guesses.
            audit.log("lockout", username, limit=lockout.scope, retry_after=lockout.retry_after)
            raise TooManyRequests(retry_after=lockout.retry_after)
        user = await users.authenticate(dbs, passwords(), username, password)
        if user is None:
            await throttle.record_failure(dbs, config, username, address)
            audit.log("login_failed", username)
            return None
        await throttle.reset_user(dbs, username)
        token = await users.start_login(dbs, user, remember=remember)
    # A fresh session: the pre-login cookie and its CSRF token die here (fixation).
    session.clear()
    now = int(time.time())
    session.update({LOGIN_KEY: token, STARTED_KEY: now, SEEN_KEY: now})
    session.permanent = remember
    audit.log("login_ok", user.username, remember=remember)
    await flash(f"You were logged in as {user.username}.", "success")
    return redirect(next_url or url_for("pages.hello"))


@bp.get("/log")
async def legacy_login() -> ResponseReturnValue:
    """The Flask tutorial's login path, kept for old links and bookmarks."""
    target = url_for("auth.login")
    if request.query_string:
        target = f"{target}?{request.query_string.decode('latin-1')}"
    return redirect(target, 301)


@bp.route("/logout", methods=["GET", "POST"])
async def logout() -> ResponseReturnValue:
    """GET asks for confirmation; POST (with its CSRF token) logs out."""
    if request.method == "GET":
        if g.user is None:
            return redirect(url_for("auth.login"))
        return await render_template("auth/logout.html")
    if g.user is not None:
        audit.log("logout", g.user.username)
    await _end_login(session.get(LOGIN_KEY), expired=False)
    session.clear()
    await flash("You were logged out", "info")
    return redirect(url_for("auth.login"))
