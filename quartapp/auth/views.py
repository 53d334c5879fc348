"""Logging in and out: the ``auth`` blueprint and the ``login_required`` decorator.

The session cookie holds only a random login token. Each request looks the token up
in the ``logins`` table (:func:`load_logged_in_user`, :mod:`.logins`), so deleting the
row (logout, ``users revoke-sessions``, a password change, deleting the user) or its
expiry ends that login even for someone holding a copy of the cookie.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from functools import wraps
from typing import ParamSpec, cast

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
from quart.wrappers import Response
from werkzeug.wrappers import Response as WerkzeugResponse

from .. import audit, signals
from ..db import db
from ..web.messages import flash
from ..web.speedups import CSRF_FIELD, renew_csrf_token
from . import credentials, devices, login_cache, logins, throttle
from .forms import DeviceCodeForm, LoginForm
from .passwords import passwords
from .signin import LOGIN_KEY, LOGIN_NAME_KEY, LOGIN_UNTIL_KEY, PENDING_KEY, complete_login

bp = Blueprint("auth", __name__)

P = ParamSpec("P")

ANONYMOUS_ENDPOINTS = frozenset({"static", "health.healthz"})
INVALID_CREDENTIALS = "Invalid Credentials. Please try again."
LOGIN_FIRST = "You need to login first."
ENDED_ELSEWHERE = (
    "You were logged out because this session was ended from another device or the "
    "password changed."
)
SESSION_EXPIRED = "Your session has expired. Please sign in again."
FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})
WRONG_CODE = "That code is wrong, used or expired. Make a new one on your sessions page."
TOO_MANY_DEVICES = (
    "This account has trusted too many new devices in the last few minutes. "
    "Try the code again later."
)
SAFE_METHODS = frozenset({"GET", "HEAD"})


def login_required(
    view: Callable[P, Awaitable[ResponseReturnValue]],
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
            # A login that just ended has said why (load_logged_in_user); only the
            # plain anonymous visitor needs telling to sign in.
            if not g.get("login_ended"):
                await flash(LOGIN_FIRST, "warning")
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
    """Set ``g.user`` from the session's login token, if that login is still live."""
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
        current_app.config,
        token,
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
    for key in (LOGIN_KEY, LOGIN_UNTIL_KEY, LOGIN_NAME_KEY):
        session.pop(key, None)


@bp.after_app_request
async def issue_csrf_token(response: Response) -> Response:
    """Put a new login's CSRF token in the cookie that starts it.

    Every logged-in page has the logout form, whose token lives in the session. Made
    when the first page renders it, the token would cost that page a new cookie, and
    a client that keeps only the login's cookie would be sent one on every page.
    """
    if LOGIN_KEY in session and CSRF_FIELD not in session:
        renew_csrf_token()  # not the one cached for the session cleared at login
    return response


@bp.route("/login", methods=["GET", "POST"])
async def login() -> ResponseReturnValue:
    """Show the login form and log the user in when it is valid."""
    next_url = safe_next(request.args.get("next"))
    if g.user is not None:
        return redirect(url_for("pages.hello"))
    if request.method == "POST" and request.mimetype not in FORM_TYPES:
        abort(415)
    form = cast(LoginForm, await LoginForm.create_form())
    error = None
    if await form.validate_on_submit():
        response = await _attempt_login(form, next_url)
        if response is not None:
            return response
        error = INVALID_CREDENTIALS
    return await render_template("auth/login.html", form=form, error=error, next=next_url)


async def _attempt_login(form: LoginForm, next_url: str | None) -> WerkzeugResponse | None:
    """Check the credentials under the throttle; a response unless they were wrong.

    The login is recorded in one transaction with the throttle's reset: if the
    database fails there, nothing is recorded and the client sees the 503 page.
    """
    config = current_app.config
    checked = await credentials.check(
        config,
        passwords(),
        # Both fields are DataRequired, so validation left no None.
        username=form.username.data or "",
        password=form.password.data or "",
        address=request.remote_addr,
        cookies=request.cookies,
    )
    user = checked.user
    if user is None:
        signals.send(signals.login_failed, username=checked.username)
        return None
    remember = bool(form.remember_me.data)
    # Imported here: the second step's package imports this module.
    from ..twofactor import login as second_step

    if await second_step.required(user.id):
        return await second_step.begin(checked, remember=remember, next_url=next_url)
    return await complete_login(checked, remember=remember, next_url=next_url)


@bp.route("/login/device", methods=["GET", "POST"])
async def trust_device() -> ResponseReturnValue:
    """Make this browser a trusted device of the user whose one-time code it enters.

    The code comes from the sessions page of a browser where the user is logged in,
    so a stranger cannot make one. It logs nobody in: the browser still needs the
    password, but its attempts count against its own device budget, not against the
    username that strangers may be holding locked. Each well-formed code is counted
    against the client's address networks first (:func:`.throttle.code_counters`);
    past the limit every code, the right one too, gets the 429 page unchecked.
    """
    if request.method == "POST" and request.mimetype not in FORM_TYPES:
        abort(415)
    form = cast(DeviceCodeForm, await DeviceCodeForm.create_form())
    status = 200
    if await form.validate_on_submit():
        code = devices.normalize_code(form.code.data or "")
        redeemed = await redeem_counted(code) if code else None
        if redeemed is None:
            form.code.errors = [WRONG_CODE]
            status = 400
        elif redeemed.nonce is None:
            form.code.errors = [TOO_MANY_DEVICES]
            status = 429
        else:
            audit.log("device_trusted", redeemed.username)
            await flash(
                f"This browser is now a trusted device of {redeemed.username}. "
                "Sign in with your password.",
                "success",
            )
            response = redirect(url_for("auth.login"))
            devices.set_cookie(response, current_app.config, redeemed.username, redeemed.nonce)
            return response
    elif form.errors:
        status = 400
    return await render_template("auth/device.html", form=form), status


async def redeem_counted(code: str) -> devices.Redeemed | None:
    """Count a typed code against the client's networks, then redeem it.

    A network over its limit is refused by one read that writes nothing (raising
    :class:`~.credentials.LockedOut`, the 429 page), so a flood costs no rows.
    """
    config = current_app.config
    wanted = throttle.code_counters(config, throttle.address_key(request.remote_addr, config))
    async with db.session() as dbs:
        lockout = await throttle.refused_by(dbs, wanted)
        if lockout is None:
            lockout = await throttle.count(dbs, config, wanted)
            await dbs.commit()
        if lockout is not None:
            audit.log("device_code_locked_out", None, retry_after=lockout.retry_after)
            raise credentials.LockedOut(lockout)
        return await devices.redeem(dbs, config, code)


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
        signals.send(signals.user_logged_out, username=g.user.username)
    token = session.get(LOGIN_KEY)
    if isinstance(token, str):
        async with db.session() as dbs:
            await logins.end(dbs, token)
    # A login waiting for its code ends too: a copy of this cookie must not finish it.
    pending = session.get(PENDING_KEY)
    if isinstance(pending, str):
        async with db.session() as dbs:
            await logins.end_pending(dbs, pending)
    session.clear()
    await flash("You were logged out", "info")
    return redirect(url_for("auth.login"))
