"""Leaving: take one's data (/account/export, a JSON download) and close one's account
(/account/delete).

Both need a fresh login (``auth.reauth``), proven with the second factor where the
person has one: a stolen session cookie, or a browser left unlocked, neither downloads
everything about the person nor deletes them. Deleting goes through the same flow as
``users delete`` (:func:`quartapp.auth.flows.delete_account`).
"""

from __future__ import annotations

import json

from quart import Response, abort, redirect, render_template, request, session, url_for
from quart.typing import ResponseReturnValue

from ..auth import flows, users
from ..auth import settings as auth_settings
from ..auth.current import login_required, signed_in
from ..auth.reauth import fresh_login_required, strong_login_required
from ..db import db
from ..web.forms import form_post
from ..web.messages import flash
from ..web.speedups import drop_csrf_token
from . import export
from .forms import DeleteAccountForm
from .views import bp

WRONG_NAME = "That is not your username. Type it exactly to close your account."
CLOSED_MESSAGE = "Your account was closed, and everything stored about it was deleted."


@bp.route("/delete", methods=["GET", "POST"])
@login_required
@fresh_login_required
@strong_login_required
@form_post(DeleteAccountForm)
async def delete(form: DeleteAccountForm) -> ResponseReturnValue:
    """Ask the person to type their username; when it is theirs, delete the account.

    Then this browser's session is cleared, and it lands on the sign-in page with a
    word that the account was closed. A wrong name is a 400 with the form's error.
    """
    if not await form.validate_on_submit():
        status = 400 if request.method == "POST" else 200
        return await render_template("account/delete.html", form=form), status
    user = signed_in()
    if users.normalize_username(form.username.data or "") != user.username:
        form.username.errors = [WRONG_NAME]
        return await render_template("account/delete.html", form=form), 400
    try:
        async with db.session() as dbs:
            await flows.delete_account(
                dbs, auth_settings.current(), user_id=user.id, username=user.username, by="user"
            )
    except users.AccountError:
        pass  # deleted meanwhile (another tab, an admin): the end is the same
    session.clear()
    drop_csrf_token()
    await flash(CLOSED_MESSAGE, "success")
    return redirect(url_for("auth.login"))


@bp.get("/export")
@login_required
@fresh_login_required
@strong_login_required
async def export_data() -> ResponseReturnValue:
    """Download everything stored about the person as one JSON file.

    A GET that changes nothing, so a link downloads it (after the login is confirmed,
    when it must be); another site can make a browser fetch it, but not read it.
    """
    user = signed_in()
    async with db.session() as dbs:
        try:
            data = await export.collect(dbs, user.id)
        except LookupError:
            abort(404)  # deleted since this request's login was read
    name = f"quartapp-{user.username}.json"
    return Response(
        json.dumps(data, indent=2, ensure_ascii=False) + "\n",
        mimetype="application/json",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
