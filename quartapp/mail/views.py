"""The mail pages: the ``mail`` blueprint, registered only while mail is on.

- ``/reset_password_request``: ask for a reset link (the same page for every address);
- ``/reset_password/<token>``: the link; keeps the token in the signed session and
  sends the browser on to ``/reset_password``, so the token leaves the address bar
  (and with it any Referer and history) before a page is shown; it is never spent by
  a GET, so a mail scanner that follows links spends nothing;
- ``/reset_password``: the new password twice, then the flow, then ``/login``;
- ``/account/email``: change (or add) the address, with a fresh, strong login;
- ``/account/email/confirm/<token>`` and ``/account/email/confirm``: the same two steps
  for a new address's link, confirmed by a POST.
"""

from __future__ import annotations

import re

from quart import Blueprint, current_app, g, redirect, render_template, request, session, url_for
from quart.typing import ResponseReturnValue

from ..auth import settings as auth_settings
from ..auth import users
from ..auth.current import current_user, login_required, signed_in
from ..auth.passwords import passwords
from ..auth.reauth import fresh_login_required, strong_login_required
from ..db import db
from ..web import errors
from ..web.forms import form_post
from ..web.messages import flash
from . import addresses, current, flows, notify, reset, tokens
from .addresses import AddressError
from .forms import ConfirmEmailForm, EmailForm, ResetPasswordForm, ResetRequestForm

bp = Blueprint("mail", __name__)

# The session's keys for a link's token between its GET and the form it leads to.
RESET_KEY = "mail_reset"
EMAIL_KEY = "mail_email"
# What a token in a link looks like (token_urlsafe(32) is 43 of these); anything else
# is refused before the session or the database sees it.
TOKEN = re.compile(r"[A-Za-z0-9_-]{20,100}")
# The access log's patterns (web.logs.redact_paths): the token never reaches the log.
REDACTED_PATHS = (
    (r"^/reset_password/[^/]*", "/reset_password/[redacted]"),
    (r"^/account/email/confirm/[^/]*", "/account/email/confirm/[redacted]"),
)

TOO_MANY_LINKS = "Too many links were sent from here or to that address. Try again in an hour."
RESET_DONE = "Your password was reset, and every device was signed out. Sign in with it."
LINK_DEAD = (
    "It was used already, a newer one was sent, the password or the address changed"
    " since, or it is older than {hours}."
)


def sentence(error: Exception) -> str:
    """A one-line error (written for the CLI) as a sentence for a page."""
    message = str(error)
    message = message[:1].upper() + message[1:]
    return message if message.endswith(".") else f"{message}."


async def dead_link(status: int, *, reset: bool) -> ResponseReturnValue:
    """The page for a link that is not live: what to do next, never a 500."""
    if reset:
        back_url, back_text, hours = (
            url_for("mail.reset_request"),
            "Request a new reset link",
            "an hour",
        )
    else:
        back_url, back_text, hours = url_for("mail.email"), "Send a new link", "two hours"
    page = await errors.render_error(
        status,
        "errors/error.html",
        title="This link does not work",
        message=LINK_DEAD.format(hours=hours),
        back_url=back_url,
        back_text=back_text,
    )
    return page, status


@bp.route("/reset_password_request", methods=["GET", "POST"])
@form_post(ResetRequestForm)
async def reset_request(form: ResetRequestForm) -> ResponseReturnValue:
    """Ask for a reset link; the answer is the same whether or not the address is known.

    The request only writes to the database (the outbox); nothing is sent in it.
    """
    status = 200
    if await form.validate_on_submit():
        try:
            normal = addresses.normalise(form.email.data or "")
        except AddressError as error:
            form.email.errors = [sentence(error)]
        else:
            async with db.session() as dbs:
                await reset.request_reset(
                    dbs,
                    current(),
                    auth_settings.current(),
                    normal=normal,
                    client=request.remote_addr,
                )
            return await render_template("mail/pages/reset_requested.html")
    if form.errors or form.email.errors:
        status = 400
    return await render_template("mail/pages/reset_request.html", form=form), status


@bp.get("/reset_password/<token>")
async def reset_link(token: str) -> ResponseReturnValue:
    """Keep the link's token server-side and go on to a URL without it (spends nothing)."""
    return await keep_token(token, RESET_KEY, "mail.reset_password", reset=True)


@bp.route("/reset_password", methods=["GET", "POST"])
@form_post(ResetPasswordForm)
async def reset_password(form: ResetPasswordForm) -> ResponseReturnValue:
    """The new password twice; a right form spends the link and sets the password.

    No automatic login: the user signs in with the new password, and with their
    second factor if they have one.
    """
    token = session.get(RESET_KEY)
    if not isinstance(token, str):
        return await dead_link(400, reset=True)
    async with db.session() as dbs:
        found = await tokens.live(dbs, token, tokens.RESET)
    if found is None:
        session.pop(RESET_KEY, None)
        return await dead_link(410, reset=True)
    status = 200
    if await form.validate_on_submit():
        new_password = form.password.data or ""
        try:
            users.check_length(new_password, auth_settings.current())
            g.setdefault(notify.RESET_FLAG, True)
            async with db.session() as dbs:
                username = await reset.reset_password(
                    dbs,
                    auth_settings.current(),
                    passwords(),
                    token=token,
                    new_password=new_password,
                )
        except tokens.LinkRefused:
            session.pop(RESET_KEY, None)
            return await dead_link(410, reset=True)
        except users.AccountError as error:
            form.password.errors = [sentence(error)]
        else:
            session.pop(RESET_KEY, None)
            current_app.logger.getChild("mail").info("password reset by mail for %s", username)
            await flash(RESET_DONE, "success")
            return redirect(url_for("auth.login"))
    if form.errors or form.password.errors:
        status = 400
    return await render_template("mail/pages/reset_password.html", form=form), status


@bp.route("/account/email", methods=["GET", "POST"])
@login_required
@fresh_login_required
@strong_login_required
@form_post(EmailForm)
async def email(form: EmailForm) -> ResponseReturnValue:
    """Change the account's address, or add one: a link goes to the new address.

    A fresh login (and, with a second factor or a passkey, one proven with it): a
    stolen session alone cannot move the account's mail, and with it its resets.
    """
    user = signed_in()
    status = 200
    if await form.validate_on_submit():
        try:
            normal = addresses.normalise(form.email.data or "")
        except AddressError as error:
            form.email.errors = [sentence(error)]
        else:
            async with db.session() as dbs:
                done = await flows.start_change(
                    dbs,
                    current(),
                    user_id=user.id,
                    username=user.username,
                    normal=normal,
                    config=auth_settings.current(),
                    client=request.remote_addr,
                )
            if done is flows.Change.SAME:
                form.email.errors = ["That is your address already."]
            elif done is flows.Change.LIMITED:
                form.email.errors = [TOO_MANY_LINKS]
                status = 429
            else:
                await flash(
                    f"We sent a link to {normal.address}. Follow it within two hours to"
                    " confirm the address; until then your current address stays in force.",
                    "success",
                )
                return redirect(url_for("mail.email"))
    if (form.errors or form.email.errors) and status == 200:
        status = 400
    async with db.session() as dbs:
        row = await addresses.of_user(dbs, user.id)
    page = await render_template(
        "mail/pages/email.html",
        form=form,
        address=row.address if row is not None else None,
        confirmed=row is not None and row.confirmed_at is not None,
    )
    return page, status


@bp.get("/account/email/confirm/<token>")
async def confirm_link(token: str) -> ResponseReturnValue:
    """Keep a confirmation link's token server-side; the next page asks for a POST."""
    return await keep_token(token, EMAIL_KEY, "mail.confirm_email", reset=False)


async def keep_token(token: str, key: str, endpoint: str, *, reset: bool) -> ResponseReturnValue:
    """Put a link's token in the signed session and go on to ``endpoint``, whose URL
    does not carry it; a token that cannot be one gets the dead-link page."""
    if not TOKEN.fullmatch(token):
        return await dead_link(410, reset=reset)
    session[key] = token
    return redirect(url_for(endpoint))


@bp.route("/account/email/confirm", methods=["GET", "POST"])
@form_post(ConfirmEmailForm)
async def confirm_email(form: ConfirmEmailForm) -> ResponseReturnValue:
    """Show the address a link confirms, with a button; the POST confirms it.

    No login needed: the link proves the mailbox, and the change was asked for by a
    fresh, strong login.
    """
    token = session.get(EMAIL_KEY)
    if not isinstance(token, str):
        return await dead_link(400, reset=False)
    async with db.session() as dbs:
        found = await tokens.live(dbs, token, tokens.EMAIL)
        username = await dbs.scalar(addresses.username_query(found.user_id)) if found else None
    if found is None or username is None:
        session.pop(EMAIL_KEY, None)
        return await dead_link(410, reset=False)
    if await form.validate_on_submit():
        try:
            async with db.session() as dbs:
                done = await flows.confirm_change(dbs, current(), token=token)
        except tokens.LinkRefused:
            session.pop(EMAIL_KEY, None)
            return await dead_link(410, reset=False)
        except AddressError:
            page = await errors.render_error(
                409,
                "errors/error.html",
                title="That address is taken",
                message="Another account confirmed this address first, so it was not"
                " changed. Your address is as it was.",
            )
            return page, 409
        session.pop(EMAIL_KEY, None)
        await flash(f"Your email address is now {done.address}.", "success")
        return redirect(url_for("mail.email" if current_user() else "auth.login"))
    page = await render_template(
        "mail/pages/confirm_email.html", form=form, address=found.address, username=username
    )
    return page, 400 if form.errors else 200
