"""The passkey pages of an account: list, add, rename and remove (``/account/passkeys``).

Adding and removing change how the account signs in, so they need a fresh login
(:func:`~quartapp.auth.reauth.fresh_login_required`); renaming does not. Adding is a
WebAuthn registration run by static/passkeys.js against the two JSON endpoints here.
"""

from __future__ import annotations

from quart import Blueprint, abort, current_app, redirect, render_template, request, url_for
from quart.typing import ResponseReturnValue
from sqlalchemy.exc import IntegrityError

from .. import signals
from ..auth import reauth
from ..auth import settings as auth_settings
from ..auth.current import login_required, signed_in
from ..auth.reauth import fresh_login_required
from ..db import db
from ..web.display import browser_summary, utc_minute
from ..web.forms import ConfirmForm, form_post
from ..web.messages import flash
from . import ceremony, settings, store
from .answers import answer, body, party, refusal
from .ceremony import Refused
from .forms import NewPasskeyForm, RenamePasskeyForm
from .models import PASSKEY_NAME_COLUMN, Passkey

bp = Blueprint("passkeys", __name__, url_prefix="/account/passkeys")

TOO_MANY = "You have as many passkeys as an account may have. Remove one to add another."
EXPIRED = "That request to add a passkey expired or was used already. Please try again."
TAKEN = "That passkey is registered already."
CONFIRM_FIRST = "Confirm it's you first."


@bp.get("")
@login_required
async def index() -> ResponseReturnValue:
    """The user's passkeys: name, when added and last used, with rename and remove."""
    async with db.session() as dbs:
        rows = await store.for_user(dbs, signed_in().id)
    entries = [
        {
            "id": row.id,
            "name": row.name,
            "created": utc_minute(row.created_at),
            "used": None if row.last_used is None else utc_minute(row.last_used),
        }
        for row in rows
    ]
    return await render_template("passkeys/index.html", entries=entries)


@bp.get("/new")
@login_required
@fresh_login_required
@form_post(NewPasskeyForm)
async def new(form: NewPasskeyForm) -> ResponseReturnValue:
    """The page that adds a passkey (with JavaScript; it says so without)."""
    async with db.session() as dbs:
        full = await store.count(dbs, signed_in().id) >= settings.current().passkeys_per_user_max
    return await render_template("passkeys/new.html", form=form, full=full)


async def _refuse_stale() -> ResponseReturnValue | None:
    """A JSON 403 when the login is not fresh: adding a factor needs a fresh one."""
    if await reauth.login_is_fresh(auth_settings.current(), signed_in().login_id):
        return None
    target = url_for("reauth.confirm", next=url_for("passkeys.new"))
    return answer(403, error=CONFIRM_FIRST, redirect=target)


@bp.post("/new/options")
@login_required
async def register_options() -> ResponseReturnValue:
    """The options for ``navigator.credentials.create()``, with a new challenge."""
    stale = await _refuse_stale()
    if stale is not None:
        return stale
    try:
        await body()
        relying = party()
    except Refused as error:
        return refusal(error)
    async with db.session() as dbs:
        existing = await store.for_user(dbs, signed_in().id)
        if len(existing) >= settings.current().passkeys_per_user_max:
            return answer(409, error=TOO_MANY)
        handle = await store.user_handle(dbs, signed_in().id)
        challenge = await store.new_challenge(dbs, "register", signed_in().id, handle)
    options = ceremony.registration_options(
        relying,
        username=signed_in().username,
        user_handle=handle,
        existing=[row.credential_id for row in existing],
        challenge=challenge,
    )
    return answer(publicKey=options)


@bp.post("/new")
@login_required
async def register() -> ResponseReturnValue:
    """Check the authenticator's answer and keep the new passkey."""
    stale = await _refuse_stale()
    if stale is not None:
        return stale
    try:
        data = await body()
        relying = party()
        name = passkey_name(data.get("name"))
        credential = ceremony.parse_registration(data.get("credential"))
        challenge = ceremony.challenge_of(credential)
    except Refused as error:
        # As at sign-in, a body that is not JSON held no authenticator's answer to refuse.
        if error.reason != "not json":
            _registration_failed(error.reason)
        return refusal(error)
    async with db.session() as dbs:
        claimed = await store.claim_challenge(dbs, challenge, "register", signed_in().id)
    if claimed is None or claimed.handle is None:
        _registration_failed("challenge")
        return answer(400, error=EXPIRED)
    try:
        made = ceremony.verify_registration(relying, credential, challenge)
    except Refused as error:
        current_app.logger.info("passkey registration refused: %s", error.reason)
        _registration_failed(error.reason)
        return refusal(error)
    async with db.session() as dbs:
        if await store.credential_taken(dbs, made.credential_id):
            _registration_failed("taken")
            return answer(409, error=TAKEN)
        try:
            added = await store.add(
                dbs,
                user_id=signed_in().id,
                credential_id=made.credential_id,
                public_key=made.public_key,
                sign_count=made.sign_count,
                handle=claimed.handle,
                name=name or default_name(),
                most=settings.current().passkeys_per_user_max,
            )
        except IntegrityError:  # registered by a request racing this one
            _registration_failed("taken")
            return answer(409, error=TAKEN)
    if added is None:
        _registration_failed("too many")
        return answer(409, error=TOO_MANY)
    signals.send(signals.passkey_added, username=signed_in().username, name=added.name)
    await flash(f"Your passkey “{added.name}” was added.", "success")
    return answer(redirect=url_for("passkeys.index"))


def _registration_failed(reason: str) -> None:
    signals.send(signals.passkey_registration_failed, username=signed_in().username, reason=reason)


def passkey_name(value: object) -> str:
    """A name sent with a new passkey: text of at most the column's length, or ""."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise Refused("The name must be text.", "bad field")
    value = " ".join(value.split())
    if len(value) > PASSKEY_NAME_COLUMN:
        raise Refused(f"Use at most {PASSKEY_NAME_COLUMN} characters for the name.", "bad field")
    # Control characters, invalid UTF-8 turned into U+FFFD, and lone surrogates (which
    # JSON can carry and no database can store).
    if any(
        ord(char) < 0x20 or ord(char) == 0x7F or char == "\ufffd" or 0xD800 <= ord(char) < 0xE000
        for char in value
    ):
        raise Refused("The name has characters a name cannot have.", "bad field")
    return value


def default_name() -> str:
    """A new passkey's name when none was given: the browser it was made in."""
    return browser_summary(request.headers.get("User-Agent"))[:PASSKEY_NAME_COLUMN]


async def _own_passkey(passkey_id: int) -> Passkey:
    """The user's passkey with this id, for its form; 404 for anyone else's."""
    async with db.session() as dbs:
        passkey = await store.owned(dbs, signed_in().id, passkey_id)
    if passkey is None:
        abort(404)
    return passkey


@bp.route("/<int:passkey_id>/rename", methods=["GET", "POST"])
@login_required
@form_post(RenamePasskeyForm)
async def rename(form: RenamePasskeyForm, passkey_id: int) -> ResponseReturnValue:
    """Rename one of the user's passkeys; 404 for anyone else's."""
    passkey = await _own_passkey(passkey_id)
    status = 200
    if await form.validate_on_submit():
        name = " ".join((form.name.data or "").split())
        async with db.session() as dbs:
            old = await store.rename(dbs, signed_in().id, passkey_id, name)
        if old is None:  # removed meanwhile
            abort(404)
        signals.send(signals.passkey_renamed, username=signed_in().username, old=old, new=name)
        await flash(f"The passkey is now called “{name}”.", "success")
        return redirect(url_for("passkeys.index"))
    if form.errors:
        status = 400
    elif request.method == "GET":
        form.name.data = passkey.name
    return await render_template("passkeys/rename.html", form=form, passkey=passkey), status


@bp.route("/<int:passkey_id>/remove", methods=["GET", "POST"])
@login_required
@fresh_login_required
@form_post(ConfirmForm)
async def remove(form: ConfirmForm, passkey_id: int) -> ResponseReturnValue:
    """Ask, then remove one of the user's passkeys; 404 for anyone else's."""
    passkey = await _own_passkey(passkey_id)
    if await form.validate_on_submit():
        async with db.session() as dbs:
            name = await store.remove(dbs, signed_in().id, passkey_id)
        if name is None:
            abort(404)
        signals.send(signals.passkey_removed, username=signed_in().username, name=name)
        await flash(f"The passkey “{name}” was removed.", "success")
        return redirect(url_for("passkeys.index"))
    status = 400 if form.errors else 200
    return await render_template("passkeys/remove.html", form=form, passkey=passkey), status
