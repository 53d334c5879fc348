"""Logging in and out: the ``auth`` blueprint (``/login``, ``/login/device``, ``/logout``).

Who is logged in on a request, and ``login_required``, are in :mod:`.current`.
"""

from __future__ import annotations

from typing import ParamSpec

from quart import (
    Blueprint,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from quart.typing import ResponseReturnValue
from werkzeug.wrappers import Response as WerkzeugResponse

from .. import signals
from ..db import db
from ..web.forms import form_post
from ..web.messages import flash
from ..web.navigation import safe_next
from . import credentials, devices, logins, settings, throttle
from .current import current_user
from .forms import DeviceCodeForm, LoginForm
from .passwords import passwords
from .registry import registry
from .signin import LOGIN_KEY, complete_login

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
WRONG_CODE = "That code is wrong, used or expired. Make a new one on your sessions page."
TOO_MANY_DEVICES = (
    "This account has trusted too many new devices in the last few minutes. "
    "Try the code again later."
)
SAFE_METHODS = frozenset({"GET", "HEAD"})


@bp.route("/login", methods=["GET", "POST"])
@form_post(LoginForm)
async def login(form: LoginForm) -> ResponseReturnValue:
    """Show the login form and log the user in when it is valid."""
    next_url = safe_next(request.args.get("next"))
    if current_user() is not None:
        return redirect(url_for("pages.hello"))
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
    config = settings.current()
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
    for step in registry().second_steps:
        if await step.required(user.id):
            return await step.begin(checked, remember, next_url)
    return await complete_login(checked, remember=remember, next_url=next_url)


@bp.route("/login/device", methods=["GET", "POST"])
@form_post(DeviceCodeForm)
async def trust_device(form: DeviceCodeForm) -> ResponseReturnValue:
    """Make this browser a trusted device of the user whose one-time code it enters.

    The code comes from the sessions page of a browser where the user is logged in,
    so a stranger cannot make one. It logs nobody in: the browser still needs the
    password, but its attempts count against its own device budget, not against the
    username that strangers may be holding locked. Each well-formed code is counted
    against the client's address networks first (:func:`.throttle.code_counters`);
    past the limit every code, the right one too, gets the 429 page unchecked.
    """
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
            signals.send(signals.device_trusted, username=redeemed.username)
            await flash(
                f"This browser is now a trusted device of {redeemed.username}. "
                "Sign in with your password.",
                "success",
            )
            response = redirect(url_for("auth.login"))
            devices.set_cookie(response, settings.current(), redeemed.username, redeemed.nonce)
            return response
    elif form.errors:
        status = 400
    return await render_template("auth/device.html", form=form), status


async def redeem_counted(code: str) -> devices.Redeemed | None:
    """Count a typed code against the client's networks, then redeem it.

    A network over its limit is refused by one read that writes nothing (raising
    :class:`~.credentials.LockedOut`, the 429 page), so a flood costs no rows.
    """
    config = settings.current()
    wanted = throttle.code_counters(config, throttle.address_key(request.remote_addr, config))
    async with db.session() as dbs:
        lockout = await throttle.refused_by(dbs, wanted)
        if lockout is None:
            lockout = await throttle.count(dbs, config, wanted)
            await dbs.commit()
        if lockout is not None:
            signals.send(signals.device_code_locked_out, retry_after=lockout.retry_after)
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
        if current_user() is None:
            return redirect(url_for("auth.login"))
        return await render_template("auth/logout.html")
    user = current_user()
    if user is not None:
        signals.send(signals.user_logged_out, username=user.username)
    token = session.get(LOGIN_KEY)
    if isinstance(token, str):
        async with db.session() as dbs:
            await logins.end(dbs, token)
    # What features keep for this browser ends too (a sign-in waiting for its code):
    # a copy of this cookie must not finish it.
    for hook in registry().signed_out:
        await hook()
    session.clear()
    await flash("You were logged out", "info")
    return redirect(url_for("auth.login"))
