"""The pages where people manage their own account: the ``account`` blueprint.

/account is the overview: the password, second factors, sessions and recent security
activity, each with its status and a link to where it is changed.
/account/password changes the password (checked through the same throttle as the
login form) and ends every other login; /account/sessions lists the live logins and
ends other ones, one at a time or all at once. Ending logins is destructive, so each
has a confirmation page (a GET saying what will end) in front of its POST, which is
unchanged: a client that posts the form's CSRF token still ends them in one request.
"""

from __future__ import annotations

from typing import Any

from quart import (
    Blueprint,
    abort,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from quart.typing import ResponseReturnValue
from sqlalchemy.ext.asyncio import AsyncSession
from werkzeug.wrappers import Response as WerkzeugResponse

from .. import signals
from ..auth import credentials, devices, flows, users
from ..auth import settings as auth_settings
from ..auth.credentials import LockedOut
from ..auth.current import login_required, signed_in
from ..auth.passwords import passwords
from ..auth.reauth import strong_login_required
from ..auth.registry import overview_rows, registry
from ..auth.signin import LOGIN_KEY
from ..db import db
from ..web import errors
from ..web.display import browser_summary, utc_minute
from ..web.forms import ConfirmForm, form_post, make_form
from ..web.messages import flash
from ..web.speedups import drop_csrf_token
from . import login_list
from .forms import ChangePasswordForm, EndSessionForm

bp = Blueprint("account", __name__, url_prefix="/account")

WRONG_PASSWORD = "Your current password is wrong."  # noqa: S105 (a message)
CHANGED_MESSAGE = "Your password was changed."
NOTHING_ELSE = "There were no other sessions to end."


def ended_message(count: int) -> str:
    """What ending ``count`` other logins did, in a sentence; only what happened."""
    if count == 1:
        return "1 other session was ended."
    return f"{count} other sessions were ended."


@bp.errorhandler(LockedOut)
async def locked_out(error: LockedOut) -> ResponseReturnValue:
    """Wrong current passwords count toward the login's limit (credentials.check)."""
    return await errors.lockout_page(
        error,
        message="There were too many wrong passwords.",
        back_url=url_for("account.password"),
        back_text="Back to the password form",
    )


@bp.get("")
@login_required
async def overview() -> ResponseReturnValue:
    """The account's front page, where the header's "Account" leads: a row per part of
    signing in (each feature's, auth's ``overview_rows``) with its status and a link."""
    async with db.session() as dbs:
        rows = await overview_rows(dbs, signed_in().id)
    return await render_template(
        "account/overview.html",
        rows=[row for row in rows if row.items is None],
        lists=[row for row in rows if row.items is not None],
    )


@bp.route("/password", methods=["GET", "POST"])
@login_required
@strong_login_required
@form_post(ChangePasswordForm)
async def password(form: ChangePasswordForm) -> ResponseReturnValue:
    """Show the change-password form and change the password when it is valid.

    With a second factor or a passkey, the login must be fresh and proven with it
    (ASVS 7.5.1): the current password alone, however recent, does not change it.
    """
    if await form.validate_on_submit():
        response = await _change_password(form)
        if response is not None:
            return response
    return await render_template("account/password.html", form=form)


async def _change_password(form: ChangePasswordForm) -> WerkzeugResponse | None:
    """Check the current password under the throttle, rate the new one, then change it.

    The new password's length comes first: it costs nothing, so a wrong length costs
    no attempt and no hashing. Its rating costs CPU, so it comes only after the current
    password was right; a wrong one or a lockout (429, raised by the check) is never
    rated. Returns None when the form must be shown again with its errors.
    """
    config = auth_settings.current()
    user = signed_in()
    new_password = form.new_password.data or ""
    try:
        users.check_length(new_password, config)
    except users.AccountError as error:
        form.new_password.errors = [sentence(str(error))]
        return None
    checked = await credentials.check(
        config,
        passwords(),
        username=user.username,
        password=form.current_password.data or "",
        address=request.remote_addr,
        cookies=request.cookies,
    )
    if checked.user is None or checked.user.id != user.id:
        signals.send(signals.password_change_failed, username=user.username)
        form.current_password.errors = [WRONG_PASSWORD]
        return None
    try:
        # One flow with `users set-password` (auth.flows): the policy, the hash, then
        # one transaction that ends everything the old password let in.
        async with db.session() as dbs:
            changed = await flows.change_password(
                dbs,
                config,
                passwords(),
                user_id=user.id,
                username=user.username,
                new_password=new_password,
                keep=flows.ThisBrowser(
                    user.login_id, request.remote_addr, request.headers.get("User-Agent")
                ),
                record=lambda dbs: credentials.record_success(dbs, checked),
            )
    except users.AccountError as error:
        # The current password was right: it must not count toward a lockout, or a
        # few refused new passwords would lock the owner out.
        async with db.session() as dbs:
            await credentials.record_success(dbs, checked)
            await dbs.commit()
        form.new_password.errors = [sentence(str(error))]
        return None
    token, nonce = changed.token, changed.nonce
    # A new CSRF token too, as at login: auth.issue_csrf_token puts it in this response.
    drop_csrf_token()
    if token is None:
        # This login was ended by another request while the password was changing:
        # the new password stands, and the user logs in with it.
        session.pop(LOGIN_KEY, None)
        await flash("Your password was changed. Please sign in again.", "success")
        response = redirect(url_for("auth.login"))
    else:
        session[LOGIN_KEY] = token
        message = CHANGED_MESSAGE
        if changed.ended:
            message = f"{message} {ended_message(changed.ended)}"
        await flash(message, "success")
        response = redirect(url_for("account.sessions"))
    if nonce is not None:
        devices.set_cookie(response, config, user.username, nonce)
    return response


def sentence(message: str) -> str:
    """An AccountError's one-line message (written for the CLI) as a sentence for a page."""
    message = message[:1].upper() + message[1:]
    return message if message.endswith(".") else f"{message}."


@bp.get("/sessions")
@login_required
async def sessions() -> ResponseReturnValue:
    """List the user's live logins, this one marked, with a way to end the others."""
    config = auth_settings.current()
    async with db.session() as dbs:
        entries = await _entries(dbs)
        trusted = await devices.count(dbs, config, signed_in().id)
    return await render_template("account/sessions.html", entries=entries, trusted_devices=trusted)


async def _entries(dbs: AsyncSession) -> list[dict[str, Any]]:
    """The user's live logins as the pages show them: this device first, then newest."""
    config = auth_settings.current()
    rows = await login_list.live_for_user(dbs, config, signed_in().id)
    methods = registry().login_methods
    entries = [
        {
            "id": login_list.public_id(config, row.id),
            "current": row.id == signed_in().login_id,
            "started": utc_minute(row.created_at),
            "seen": utc_minute(row.last_seen),
            "address": row.address or "Unknown address",
            "browser": browser_summary(row.user_agent),
            "remember": row.remember,
            "method": methods.get(row.method, row.method),
        }
        for row in rows
    ]
    entries.sort(key=lambda entry: not entry["current"])
    return entries


@bp.route("/sessions/end", methods=["GET", "POST"])
@login_required
@form_post(EndSessionForm)
async def end_session(form: EndSessionForm) -> ResponseReturnValue:
    """GET ``?login=<id>`` asks, naming the login; POST ends it. 404 for any id that is
    not one of this user's other live logins.

    A GET without an id (the "Open the form again" link of an expired form's page)
    goes back to the list.
    """
    if request.method == "GET":
        public = request.args.get("login", "")
        if not public:
            return redirect(url_for("account.sessions"))
        async with db.session() as dbs:
            others = [entry for entry in await _entries(dbs) if not entry["current"]]
        entry = next((entry for entry in others if entry["id"] == public), None)
        if entry is None:
            abort(404)
        return await render_template(
            "account/end_session.html", form=await make_form(ConfirmForm), entry=entry
        )
    if not await form.validate_on_submit():
        abort(400)
    async with db.session() as dbs:
        ended = await login_list.end_other(
            dbs,
            auth_settings.current(),
            signed_in().id,
            form.login.data or "",
            keep=signed_in().login_id,
        )
    if not ended:
        abort(404)
    signals.send(signals.session_ended, username=signed_in().username, count=1, everywhere=False)
    await flash("That session was ended.", "success")
    return redirect(url_for("account.sessions"))


@bp.route("/sessions/end-others", methods=["GET", "POST"])
@login_required
@form_post(ConfirmForm)
async def end_other_sessions(form: ConfirmForm) -> ResponseReturnValue:
    """GET asks, listing what will end; POST ends every login of this user but this one.

    The POST needs only the page's CSRF token (checked for every POST), as before the
    confirmation page existed.
    """
    config = auth_settings.current()
    # The devices logged out here lose their trust too; this browser keeps its own.
    this_device = await devices.trusted(config, request.cookies, signed_in().username)
    if request.method == "GET":
        async with db.session() as dbs:
            others = [entry for entry in await _entries(dbs) if not entry["current"]]
            trusted = await devices.count(dbs, config, signed_in().id)
        return await render_template(
            "account/end_others.html",
            form=form,
            others=others,
            other_devices=max(0, trusted - (1 if this_device else 0)),
        )
    async with db.session() as dbs:
        ended = await flows.end_logins(
            dbs,
            user_id=signed_in().id,
            username=signed_in().username,
            keep_login=signed_in().login_id,
            keep_device=this_device,
        )
    await flash(ended_message(ended) if ended else NOTHING_ELSE, "success" if ended else "info")
    return redirect(url_for("account.sessions"))


@bp.route("/devices/new", methods=["GET", "POST"])
@login_required
async def new_device() -> ResponseReturnValue:
    """Make a one-time code that trusts a new browser as this user's device.

    Only a logged-in user can make one, so a stranger holding the username locked
    cannot. The code is shown once and stored hashed; a GET goes back to the list.
    """
    if request.method == "GET":
        return redirect(url_for("account.sessions"))
    async with db.session() as dbs:
        code = await devices.new_code(dbs, signed_in().id)
    signals.send(signals.device_code_created, username=signed_in().username)
    return await render_template(
        "account/new_device.html",
        code=devices.format_code(code),
        minutes=devices.CODE_LIFETIME // 60,
    )
