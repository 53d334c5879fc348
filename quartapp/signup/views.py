"""The sign-up pages: the ``signup`` blueprint, registered while mail is on.

- ``/register``: a new account (a 404 unless ``REGISTRATION_OPEN``); success sends the
  browser to ``/login`` with "check your email", whether the address was new or taken;
- ``/confirm_email``: what an unconfirmed account sees instead of any
  ``login_required`` page: "Confirm your email address" and "Send the email again";
- ``/confirm_email/<token>``: the link; its GET shows one button, its POST confirms,
  so a mail scanner that follows links confirms nothing. Nobody is signed in by it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from quart import Blueprint, abort, redirect, render_template, request, url_for
from quart.typing import ResponseReturnValue

from ..auth import settings as auth_settings
from ..auth import users
from ..auth.current import current_user
from ..auth.passwords import passwords
from ..auth.signin import release_login
from ..db import db
from ..mail import addresses, tokens
from ..mail import settings as mail_settings
from ..mail.addresses import AddressError
from ..web import errors
from ..web.forms import form_post, make_form
from ..web.messages import flash
from . import flows, settings
from .forms import ConfirmForm, RegistrationForm, ResendForm

bp = Blueprint("signup", __name__)

# What a token in a link looks like (token_urlsafe(32) is 43 of these).
TOKEN = re.compile(r"[A-Za-z0-9_-]{20,100}")
# The access log's patterns (web.logs.redact_paths): the token never reaches the log.
REDACTED_PATHS = ((r"^/confirm_email/[^/]+", "/confirm_email/[redacted]"),)

CHECK_EMAIL = (
    "Check your email: we sent a link to confirm your address. Open it, then sign in."
    " The link works for three days."
)
NAME_TAKEN = "That username is taken. Pick another."
CONFIRMED = "Your email address is confirmed. Sign in to use your account."
RESENT = "We sent the email again. Check your spam folder too."
LINK_DEAD = (
    "It was used already, a newer one was sent, or it is older than three days. Sign in"
    " to have a new one sent."
)


@dataclass
class Wait:
    """A limit reached: the seconds until a retry may work (``errors.Refusal``)."""

    retry_after: int


def sentence(error: Exception) -> str:
    """A one-line error (written for the CLI) as a sentence for a page."""
    message = str(error)
    message = message[:1].upper() + message[1:]
    return message if message.endswith(".") else f"{message}."


def is_open() -> bool:
    """Whether ``/register`` answers: the setting, and mail on (checked at start)."""
    return settings.current().registration_open and mail_settings.current().on


async def too_many(retry_after: int) -> ResponseReturnValue:
    """The 429 page of a sign-up limit: when to try again."""
    return await errors.lockout_page(
        Wait(retry_after),
        message="Too many sign-ups or emails from here or to that address.",
        back_url=url_for("auth.login"),
        back_text="Back to sign in",
    )


@bp.route("/register", methods=["GET", "POST"])
@form_post(RegistrationForm)
async def register(form: RegistrationForm) -> ResponseReturnValue:
    """Make an account, unconfirmed, and send the link that confirms its address.

    Each field's own errors come first; a taken username is said only once the rest
    is valid, and after it was counted against the client's network.
    """
    if not is_open():
        abort(404)
    if current_user() is not None:
        return redirect(url_for("pages.hello"))
    status = 200
    if await form.validate_on_submit():
        config = auth_settings.current()
        normal = None
        try:
            users.check_username(form.username.data or "", config)
        except users.AccountError as error:
            form.username.errors = [sentence(error)]
        try:
            normal = addresses.normalise(form.email.data or "")
        except AddressError as error:
            form.email.errors = [sentence(error)]
        if normal is not None and not form.username.errors:
            try:
                async with db.session() as dbs:
                    done = await flows.register(
                        dbs,
                        settings.current(),
                        mail_settings.current(),
                        config,
                        passwords(),
                        name=form.username.data or "",
                        normal=normal,
                        password=form.password.data or "",
                        client=request.remote_addr,
                    )
            except users.AccountError as error:
                form.password.errors = [sentence(error)]
            else:
                if done.outcome is flows.Outcome.LIMITED:
                    return await too_many(done.retry_after)
                if done.outcome is flows.Outcome.TAKEN_NAME:
                    form.username.errors = [NAME_TAKEN]
                else:
                    await flash(CHECK_EMAIL, "success")
                    return redirect(url_for("auth.login"))
    if request.method == "POST":
        status = 400
    return await render_template("signup/register.html", form=form), status


@bp.route("/confirm_email", methods=["GET", "POST"])
async def confirm_needed() -> ResponseReturnValue:
    """What a signed-in, unconfirmed account sees, and its one action: a new link.

    Not ``login_required`` (that would send the held login here again), but the same
    for an anonymous visitor, before any form is read.
    """
    user = current_user()
    if user is None:
        return redirect(url_for("auth.login", next=url_for("signup.confirm_needed")))
    form = await make_form(ResendForm)
    async with db.session() as dbs:
        held = await flows.unconfirmed(dbs, user.id)
    if not held:
        release_login()  # confirmed meanwhile (from another browser, or by an admin)
        return redirect(url_for("pages.hello"))
    if await form.validate_on_submit():
        async with db.session() as dbs:
            resent, retry_after = await flows.resend(
                dbs,
                settings.current(),
                mail_settings.current(),
                auth_settings.current(),
                user_id=user.id,
                username=user.username,
                client=request.remote_addr,
            )
        if resent is flows.Resent.LIMITED:
            page = await render_template(
                "signup/confirm_needed.html",
                form=form,
                wait=errors.wait_in_words(retry_after),
            )
            return page, 429, {"Retry-After": str(retry_after)}
        if resent is flows.Resent.SENT:
            await flash(RESENT, "success")
        return redirect(url_for("signup.confirm_needed"))
    return await render_template("signup/confirm_needed.html", form=form, wait=None)


async def dead_link(status: int) -> ResponseReturnValue:
    """The page for a link that is not live: what to do next, never a 500."""
    page = await errors.render_error(
        status,
        "errors/error.html",
        title="This link does not work",
        message=LINK_DEAD,
        back_url=url_for("auth.login"),
        back_text="Sign in",
    )
    return page, status


@bp.route("/confirm_email/<token>", methods=["GET", "POST"])
@form_post(ConfirmForm)
async def confirm(form: ConfirmForm, token: str) -> ResponseReturnValue:
    """GET: one button, if the link is live. POST: confirm, then sign in as usual."""
    if not TOKEN.fullmatch(token):
        return await dead_link(404)
    if await form.validate_on_submit():
        try:
            async with db.session() as dbs:
                await flows.confirm(dbs, token=token)
        except tokens.LinkRefused:
            return await dead_link(410)
        await flash(CONFIRMED, "success")
        return redirect(url_for("auth.login"))
    async with db.session() as dbs:
        found = await tokens.live(dbs, token, flows.PURPOSE)
    if found is None:
        return await dead_link(410)
    status = 400 if request.method == "POST" else 200
    return await render_template("signup/confirm.html", form=form, address=found.address), status
