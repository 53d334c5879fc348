"""/account/two-factor: turning TOTP on and off, and making new recovery codes.

Turning TOTP on shows a new key (a QR code served at its own URL, and the key as
text), kept on the server until a code from it is entered; only then is it in force,
and the ten recovery codes are shown, once. Each of these changes needs a fresh login
(:mod:`quartapp.auth.reauth`): enrolling, new recovery codes and turning TOTP off.
"""

from __future__ import annotations

import time

from quart import Blueprint, Response, abort, redirect, render_template
from quart import url_for as url
from quart.typing import ResponseReturnValue

from .. import signals
from ..auth.current import login_required, signed_in
from ..auth.reauth import fresh_login_required, unless_fresh
from ..db import db
from ..web.display import browser_summary, utc_minute
from ..web.forms import ConfirmForm, form_post
from ..web.messages import flash
from . import flows, misses, recovery, totp
from .forms import EnrolForm
from .login import WRONG_CODE

bp = Blueprint("twofactor", __name__, url_prefix="/account/two-factor")

NOT_A_CODE = "Enter the 6 digits your authenticator app shows for quartapp."
# How the two-factor page names where a wrong code was typed.
STEPS = {misses.SIGN_IN: "Signing in", misses.CONFIRM: "Confirming it was you"}
TURNED_OFF = "Two-factor authentication is off. You sign in with your password alone."


@bp.route("", methods=["GET", "POST"])
@login_required
@form_post(EnrolForm)
async def settings(form: EnrolForm) -> ResponseReturnValue:
    """With TOTP on, say so; else show a new key and turn it on with its first code."""
    async with db.session() as dbs:
        if await totp.is_enabled(dbs, signed_in().id):
            left = await recovery.remaining(dbs, signed_in().id)
            failures = await misses.recent(dbs, signed_in().id)
            in_a_row = await misses.in_a_row(dbs, signed_in().id)
            return await render_template(
                "twofactor/settings.html",
                left=left,
                few=recovery.FEW,
                failures=[
                    {
                        "at": utc_minute(row.at),
                        "address": row.address or "Unknown address",
                        "browser": browser_summary(row.user_agent),
                        "step": STEPS.get(row.step, row.step),
                    }
                    for row in failures
                ],
                in_a_row=in_a_row,
                blocked=in_a_row >= misses.LIMIT,
            )
    # Adding a factor needs a fresh login, as removing one does; the status above
    # does not, so this is the decorator's check, here.
    refused = await unless_fresh()
    if refused is not None:
        return refused
    status = 200
    if await form.validate_on_submit():
        code = totp.normalize(form.code.data or "")
        codes: list[str] = []
        async with db.session() as dbs:
            if code is not None and await totp.confirm(
                dbs, signed_in().id, signed_in().login_id, code
            ):
                codes = await recovery.replace(dbs, signed_in().id)
                await dbs.commit()
        if codes:
            signals.send(signals.two_factor_enabled, username=signed_in().username)
            return await _show_codes(codes, first=True)
        form.code.errors = [WRONG_CODE if code is not None else NOT_A_CODE]
        status = 400
    elif form.errors:
        status = 400
    async with db.session() as dbs:
        secret = await totp.pending_secret(dbs, signed_in().id, signed_in().login_id)
    if secret is None:  # turned on by another request meanwhile
        return redirect(url("twofactor.settings"))
    page = await render_template("twofactor/enrol.html", form=form, secret=secret)
    return page, status


async def _show_codes(codes: list[str], *, first: bool) -> ResponseReturnValue:
    """The page that shows new recovery codes, once (no-store, as every page is)."""
    shown = [recovery.format_code(code) for code in codes]
    page = await render_template("twofactor/recovery_codes.html", codes=shown, first=first)
    response = Response(page, mimetype="text/html")
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/qr.svg")
@login_required
@fresh_login_required
async def qr_code() -> ResponseReturnValue:
    """This login's pending key's QR code, made from the key on the server; 404 without one.

    Its own URL, so the strict CSP needs no ``data:`` image; the key is never in it.
    """
    async with db.session() as dbs:
        factor = await totp.find(dbs, signed_in().id)
    if factor is None or not totp.is_pending_for(factor, signed_in().login_id, time.time()):
        abort(404)
    svg = totp.qr_svg(totp.provisioning_uri(factor.secret, signed_in().username))
    response = Response(svg, mimetype="image/svg+xml")
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/recovery-codes", methods=["GET", "POST"])
@login_required
@fresh_login_required
@form_post(ConfirmForm)
async def new_codes(form: ConfirmForm) -> ResponseReturnValue:
    """GET asks; POST replaces the recovery codes with ten new ones and shows them once."""
    async with db.session() as dbs:
        if not await totp.is_enabled(dbs, signed_in().id):
            return redirect(url("twofactor.settings"))
        left = await recovery.remaining(dbs, signed_in().id)
    if await form.validate_on_submit():
        async with db.session() as dbs:
            codes = await recovery.replace(dbs, signed_in().id)
            await dbs.commit()
        signals.send(signals.recovery_codes_renewed, username=signed_in().username)
        return await _show_codes(codes, first=False)
    status = 400 if form.errors else 200
    return await render_template("twofactor/new_codes.html", form=form, left=left), status


@bp.route("/disable", methods=["GET", "POST"])
@login_required
@fresh_login_required
@form_post(ConfirmForm)
async def disable(form: ConfirmForm) -> ResponseReturnValue:
    """GET asks; POST removes the TOTP key, the recovery codes and any half-done logins.

    Then the account's front page, with a neutral note: nothing was set up, so no
    new key and no success banner.
    """
    if await form.validate_on_submit():
        user = signed_in()
        async with db.session() as dbs:
            await flows.turn_off(dbs, user_id=user.id, username=user.username, by="user")
        await flash(TURNED_OFF, "info")
        return redirect(url("account.overview"))
    async with db.session() as dbs:
        enabled = await totp.is_enabled(dbs, signed_in().id)
        left = await recovery.remaining(dbs, signed_in().id) if enabled else 0
    if not enabled:
        return redirect(url("twofactor.settings"))
    status = 400 if form.errors else 200
    return await render_template("twofactor/disable.html", form=form, left=left), status
