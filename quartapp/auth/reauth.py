"""Re-authentication: a fresh proof of who the user is before a sensitive change.

Adding or removing a sign-in factor, making new recovery codes and turning two-factor
off need a login that is *fresh*: made, or confirmed, within ``REAUTH_MINUTES``. A
stolen session cookie, or a browser left unlocked, is then not enough to take the
account over by swapping its factors. Freshness is kept on the login row
(``logins.verified_at``), so it holds across workers and instances, and ends with the
login.

Put :func:`fresh_login_required` under ``login_required``::

    @bp.route("/two-factor/disable", methods=["GET", "POST"])
    @login_required
    @fresh_login_required
    async def disable() -> ResponseReturnValue: ...

A stale login is sent to ``/login/confirm?next=...`` (the ``reauth`` blueprint), which
asks for the password through the same throttle as the login form, plus a code when
the user has a second factor (the registry's ``confirm_steps``), then comes back. Other factors (a
passkey) can confirm by calling :func:`confirm_login`.

Some changes need more than freshness from a user who has a second factor or a
passkey: a fresh login *proven with it* (:func:`strong_login_required`), so a password
alone, stolen or phished, cannot change them. The login row keeps how its last proof
was made (``logins.verified_method``). Which users have such a factor is asked of the
checks that features register in auth's registry (:mod:`.registry`).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from functools import wraps
from typing import ParamSpec

from quart import Blueprint, current_app, redirect, render_template, request, url_for
from quart.typing import ResponseReturnValue
from sqlalchemy import select, update
from werkzeug.wrappers import Response as WerkzeugResponse

from .. import signals
from ..db import db
from ..web import errors
from ..web.forms import form_post
from ..web.messages import flash
from ..web.navigation import requested_path, safe_next
from . import credentials, settings
from .current import login_required, signed_in
from .forms import ConfirmForm
from .models import Login
from .passwords import passwords
from .registry import ConfirmStep, has_strong_factor, registry, strong_proof
from .settings import AuthSettings

bp = Blueprint("reauth", __name__)

P = ParamSpec("P")

CONFIRM_FIRST = "Confirm it's you to continue."
CONFIRM_STRONG = (
    "Confirm it's you with your authenticator code, a recovery code or a passkey to continue."
)
WRONG_PASSWORD = "Your password is wrong."  # noqa: S105 (a message)


def window(config: AuthSettings) -> int:
    """Seconds a login stays fresh after it was made or confirmed."""
    return config.reauth_minutes * 60


def is_fresh(config: AuthSettings, verified_at: float | None, now: float) -> bool:
    """Whether a login verified at ``verified_at`` (Unix seconds) is still fresh."""
    return verified_at is not None and 0 <= now - verified_at <= window(config)


async def login_is_fresh(config: AuthSettings, login_id: str) -> bool:
    """Read the login's ``verified_at`` (one query, never cached) and judge it."""
    async with db.session() as dbs:
        verified_at = await dbs.scalar(select(Login.verified_at).where(Login.id == login_id))
    return is_fresh(config, verified_at, time.time())


async def confirm_login(login_id: str, method: str = "password") -> None:
    """Mark the login as just verified (commits): the user proved who they are again.

    ``method``: how ("password", "password+code", "passkey"); the registry's ``strong_methods``
    are the ones a strong login needs.
    """
    async with db.session() as dbs:
        await dbs.execute(
            update(Login)
            .where(Login.id == login_id)
            .values(verified_at=time.time(), verified_method=method)
        )
        if method in registry().strong_methods:
            user_id = await dbs.scalar(select(Login.user_id).where(Login.id == login_id))
            if user_id is not None:
                await strong_proof(dbs, user_id)
        await dbs.commit()


def strong_login_required(
    view: Callable[P, Awaitable[ResponseReturnValue]],
) -> Callable[P, Awaitable[ResponseReturnValue]]:
    """For a user with a second factor or a passkey: a fresh login proven with it.

    The login must have been made, or confirmed at /login/confirm, within
    ``REAUTH_MINUTES`` with a code or a passkey; a stale one, or one proven with the
    password alone, is sent to confirm, then back here. A user with the password alone
    goes straight through: the view asks for the password itself. Goes under
    ``login_required``.
    """

    @wraps(view)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> ResponseReturnValue:
        refused = await unless_strong()
        if refused is not None:
            return refused
        return await current_app.ensure_async(view)(*args, **kwargs)

    return wrapper


async def unless_strong() -> WerkzeugResponse | None:
    """None when :func:`strong_login_required` lets this through; else the way to confirm."""
    if not await has_strong_factor(signed_in().id):
        return None
    async with db.session() as dbs:
        row = (
            await dbs.execute(
                select(Login.verified_at, Login.verified_method).where(
                    Login.id == signed_in().login_id
                )
            )
        ).first()
    if row is not None:
        verified_at, method = row
        if method in registry().strong_methods and is_fresh(
            settings.current(), verified_at, time.time()
        ):
            return None
    await flash(CONFIRM_STRONG, "info")
    return redirect(url_for("reauth.confirm", next=requested_path()))


def fresh_login_required(
    view: Callable[P, Awaitable[ResponseReturnValue]],
) -> Callable[P, Awaitable[ResponseReturnValue]]:
    """Send a logged-in user whose login is not fresh to confirm it, then back here.

    Goes under ``login_required``, which has already made sure ``g.user`` is set. The
    way back is this page's path: a POST that was refused is made again from its page.
    """

    @wraps(view)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> ResponseReturnValue:
        refused = await unless_fresh()
        if refused is not None:
            return refused
        return await current_app.ensure_async(view)(*args, **kwargs)

    return wrapper


async def unless_fresh() -> WerkzeugResponse | None:
    """None for a fresh login; else the way to confirm it, back to this page after.

    For a view that needs a fresh login for only some of what it shows.
    """
    if await login_is_fresh(settings.current(), signed_in().login_id):
        return None
    await flash(CONFIRM_FIRST, "info")
    return redirect(url_for("reauth.confirm", next=requested_path()))


@bp.errorhandler(credentials.LockedOut)
async def locked_out(error: credentials.LockedOut) -> ResponseReturnValue:
    """Wrong passwords here count toward the login's limit, as on the login form."""
    return await errors.lockout_page(
        error,
        message="There were too many wrong passwords.",
        back_url=url_for("reauth.confirm", next=safe_next(request.args.get("next"))),
        back_text="Back to the confirmation form",
    )


@bp.route("/login/confirm", methods=["GET", "POST"])
@login_required
@form_post(ConfirmForm)
async def confirm(form: ConfirmForm) -> ResponseReturnValue:
    """Ask for the password again (and a code, with two-factor on), then go to ``next``."""
    next_url = safe_next(request.args.get("next")) or url_for("account.overview")
    steps = [step for step in registry().confirm_steps if await step.asks(signed_in().id)]
    ask_code = bool(steps)
    status = 200
    if await form.validate_on_submit():
        if await _check(form, steps):
            method = steps[0].method if steps else "password"
            await confirm_login(signed_in().login_id, method)
            signals.send(signals.reauthenticated, username=signed_in().username, method=method)
            return redirect(next_url)
        status = 400
    elif form.errors:
        status = 400
    page = await render_template("auth/confirm.html", form=form, next=next_url, ask_code=ask_code)
    return page, status


async def _check(form: ConfirmForm, steps: list[ConfirmStep]) -> bool:
    """The password under the throttle (a lockout is a 429), then each step this user has."""
    user = signed_in()
    checked = await credentials.check(
        settings.current(),
        passwords(),
        username=user.username,
        password=form.password.data or "",
        address=request.remote_addr,
        cookies=request.cookies,
    )
    if checked.user is None or checked.user.id != user.id:
        signals.send(signals.login_failed, username=user.username)
        form.password.errors = [WRONG_PASSWORD]
        return False
    for step in steps:
        error = await step.check(form, user.id)
        if error is not None:
            form.code.errors = [error]
            return False
    async with db.session() as dbs:
        await credentials.record_success(dbs, checked)
        await dbs.commit()
    return True
