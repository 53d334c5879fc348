"""The second step of a password login, and the code that /login/confirm asks for.

After a right password, a user with TOTP in force is not logged in: :func:`begin`
stores a *pending* login (``pending_logins``, keyed by the SHA-256 of a random token
that only this browser's session cookie holds) and sends the browser to
``/login/two-factor``. There a TOTP code or a recovery code completes the login
through :func:`quartapp.auth.signin.complete_login`, as the password form does, with
``method`` "password+totp" or "password+recovery-code". The pending row lives
:data:`PENDING_LIFETIME` seconds and is deleted by the code that completes it, in the
same transaction that spends the code, so it completes one login at most.

Every code entered is counted by the login throttle before it is checked, against the
same keys as a password (the address, and the username or this browser's trusted
device), and the password's own attempt is cleared only once the code was right: a
thief with the password gets no more guesses at the code than at a password. Wrong
codes in a row also count against the user on every path (:mod:`.misses`): after ten,
only a recovery code or a passkey signs in.

Logging out, "Start again" and a new password step in the same browser delete its
pending row, so a copy of the cookie taken during the code step completes nothing.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

from quart import (
    Blueprint,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from quart.typing import ResponseReturnValue
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from werkzeug.wrappers import Response as WerkzeugResponse

from .. import signals
from ..auth import credentials, devices, logins, throttle, users
from ..auth import settings as auth_settings
from ..auth.current import current_user
from ..auth.models import User
from ..auth.settings import AuthSettings
from ..auth.signin import complete_login
from ..db import db
from ..web import errors
from ..web.forms import form_post
from ..web.messages import flash
from ..web.navigation import safe_next
from . import misses, recovery, totp
from .forms import CODE_HINT, CodeForm
from .models import PendingLogin

bp = Blueprint("second_step", __name__)

# The session cookie's key for a login whose password was right and whose code is
# still to come: the token whose digest names its ``pending_logins`` row.
PENDING_KEY = "twofactor_pending"
PENDING_LIFETIME = 300
TOTP, RECOVERY_CODE = "totp", "recovery-code"
WRONG_CODE = "That code is wrong or was used already."
CODE_NEEDED = "Enter the code from your authenticator app, or a recovery code."
EXPIRED = "Your sign-in took too long or was already used. Enter your password again."


async def required(user_id: int) -> bool:
    """Whether the user's password login needs a second step."""
    async with db.session() as dbs:
        return await totp.is_enabled(dbs, user_id)


async def begin(
    checked: credentials.Checked, *, remember: bool, next_url: str | None
) -> WerkzeugResponse:
    """After a right password: store the pending login and send the browser to its code.

    The throttle is left as the password check counted it; the code clears it. An
    upgraded hash is kept now, while the password is at hand.
    """
    user = checked.user
    assert user is not None  # only called with a right password
    token = secrets.token_urlsafe(32)
    now = time.time()
    earlier = session.get(PENDING_KEY)
    async with db.session() as dbs:
        if isinstance(earlier, str):
            # This browser's earlier password step ends here: a copy of its cookie must
            # not finish it now that a new one has begun.
            await dbs.execute(
                delete(PendingLogin).where(PendingLogin.id == logins.digest(earlier))
            )
        if checked.new_hash is not None:
            await users.store_rehash(dbs, user.id, checked.new_hash)
        # Expired rows go here, at the only place rows are made: the table stays as
        # small as the logins of the last five minutes.
        await dbs.execute(delete(PendingLogin).where(PendingLogin.expires_at <= now))
        dbs.add(
            PendingLogin(
                id=logins.digest(token),
                user_id=user.id,
                remember=remember,
                expires_at=now + PENDING_LIFETIME,
            )
        )
        await dbs.commit()
    session[PENDING_KEY] = token
    target = url_for("second_step.enter_code", next=next_url) if next_url else None
    return redirect(target or url_for("second_step.enter_code"))


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a typed code did: the method it proved, or why it was refused."""

    method: str | None = None
    # What the typed text was taken for: TOTP (six digits) or else a recovery code.
    tried: str = ""
    # Set when a TOTP code was refused unchecked (:mod:`.misses`).
    refusal: misses.Refusal | None = None

    @property
    def error(self) -> str:
        """The form's error for a code that did not prove anything."""
        return self.refusal.message if self.refusal is not None else WRONG_CODE


async def use_code(
    dbs: AsyncSession, user_id: int, text: str, *, step: str = misses.SIGN_IN
) -> Outcome:
    """Spend ``text`` as a TOTP code or else a recovery code (no commit); what it proved.

    Counts a wrong code against the user's run of misses (the caller commits either
    way) and ends the run when it was right. A TOTP code is counted before it is
    checked, and refused unchecked after too many misses in a row.
    """
    now = time.time()
    code = totp.normalize(text)
    method = None
    if code is not None:
        refusal = await misses.claim(dbs, user_id, now)
        if refusal is not None:
            return Outcome(tried=TOTP, refusal=refusal)
        if await totp.accept(dbs, user_id, code):
            method = TOTP
    else:
        spare = recovery.normalize(text)
        if spare is not None and await recovery.use(dbs, user_id, spare):
            method = RECOVERY_CODE
    if method is not None:
        await misses.reset(dbs, user_id)
        return Outcome(method, tried=method)
    await misses.missed(
        dbs,
        auth_settings.current(),
        user_id,
        claimed=code is not None,
        step=step,
        address=request.remote_addr,
        user_agent=request.headers.get("User-Agent"),
        now=now,
    )
    return Outcome(tried=TOTP if code is not None else RECOVERY_CODE)


async def count_attempt(config: AuthSettings, username: str) -> tuple[str, str | None]:
    """Count a code against the throttle, as a password is; raises LockedOut (429).

    Returns the address key and the trusted device it was counted under.
    """
    address = throttle.address_key(request.remote_addr, config)
    device = await devices.trusted(config, request.cookies, username)
    await credentials.count_attempt(config, username=username, address=address, device=device)
    return address, device


async def _pending() -> tuple[User, bool] | None:
    """The live pending login this browser's cookie names: its user, and "remember me"."""
    token = session.get(PENDING_KEY)
    if not isinstance(token, str):
        return None
    query = (
        select(User, PendingLogin.remember)
        .join(PendingLogin, User.id == PendingLogin.user_id)
        .where(PendingLogin.id == logins.digest(token), PendingLogin.expires_at > time.time())
    )
    async with db.session() as dbs:
        row = (await dbs.execute(query)).first()
    return None if row is None else (row[0], bool(row[1]))


@bp.errorhandler(credentials.LockedOut)
async def locked_out(error: credentials.LockedOut) -> ResponseReturnValue:
    """Wrong codes count as wrong passwords do: the login form's 429, in words for codes."""
    return await errors.lockout_page(
        error,
        message="There were too many wrong codes for this account.",
        back_url=url_for("auth.login"),
        back_text="Back to the sign-in page",
    )


@bp.route("/login/two-factor", methods=["GET", "POST"])
@form_post(CodeForm)
async def enter_code(form: CodeForm) -> ResponseReturnValue:
    """Ask for the second factor of a login whose password was right, and complete it."""
    next_url = safe_next(request.args.get("next"))
    if current_user() is not None:
        return redirect(url_for("pages.hello"))
    pending = await _pending()
    if pending is None:
        session.pop(PENDING_KEY, None)
        await flash(EXPIRED, "warning")
        target = url_for("auth.login", next=next_url) if next_url else None
        return redirect(target or url_for("auth.login"))
    status = 200
    if await form.validate_on_submit():
        response = await _complete(form, pending, next_url)
        if response is not None:
            return response
        status = 400
    elif form.errors:
        status = 400
    return (
        await render_template("twofactor/login.html", form=form, next=next_url, hint=CODE_HINT),
        status,
    )


async def _complete(
    form: CodeForm, pending: tuple[User, bool], next_url: str | None
) -> ResponseReturnValue | None:
    """Count the code, spend it with the pending login, then log in; None if it was wrong.

    A TOTP code refused for too many misses in a row gets the form again, as a 429.
    """
    user, remember = pending
    address, device = await count_attempt(auth_settings.current(), user.username)
    token = session.get(PENDING_KEY)
    async with db.session() as dbs:
        outcome = await use_code(dbs, user.id, form.code.data or "")
        if outcome.method is not None:
            # Deleted by the code that completes it: a second request with another
            # code finds it gone. Rolled back with the code if it is gone already.
            used = await dbs.execute(
                delete(PendingLogin).where(
                    PendingLogin.id == logins.digest(str(token)),
                    PendingLogin.expires_at > time.time(),
                )
            )
            if not getattr(used, "rowcount", 0):
                await dbs.rollback()
                session.pop(PENDING_KEY, None)
                await flash(EXPIRED, "warning")
                return redirect(url_for("auth.login"))
            left = await recovery.remaining(dbs, user.id)
        await dbs.commit()
    method = outcome.method
    if method is None:
        form.code.errors = [outcome.error]
        if outcome.refusal is None:
            signals.send(
                signals.second_factor_failed,
                username=user.username,
                method=outcome.tried,
                step="login",
            )
            return None
        return await _refused(form, next_url, outcome.refusal)
    signals.send(
        signals.second_factor_succeeded, username=user.username, method=method, step="login"
    )
    # As the password form's own check would say: the throttle's reset goes with the
    # login (complete_login), against the counters this code was counted under.
    checked = credentials.Checked(user.username, address, device, user)
    response = await complete_login(
        checked, remember=remember, next_url=next_url, method=f"password+{method}"
    )
    if method == RECOVERY_CODE:
        signals.send(signals.recovery_code_used, username=user.username, remaining=left)
        await flash_remaining(left)
    return response


async def _refused(
    form: CodeForm, next_url: str | None, refusal: misses.Refusal
) -> ResponseReturnValue:
    """The code form again, as a 429 (with ``Retry-After`` during a wait)."""
    page = await render_template("twofactor/login.html", form=form, next=next_url, hint=CODE_HINT)
    headers = {} if refusal.retry_after is None else {"Retry-After": str(refusal.retry_after)}
    return page, 429, headers


@bp.post("/login/two-factor/restart")
async def start_again() -> ResponseReturnValue:
    """ "Start again": end this browser's pending login, then back to the password form."""
    await end_this_browsers()
    return redirect(url_for("auth.login"))


async def end_this_browsers() -> None:
    """End the pending login this browser's cookie names (commits).

    Registered with auth's ``signed_out`` too: logging out, or starting again, ends it, so
    a copy of the cookie taken during the code step completes nothing.
    """
    token = session.pop(PENDING_KEY, None)
    if isinstance(token, str):
        async with db.session() as dbs:
            await dbs.execute(delete(PendingLogin).where(PendingLogin.id == logins.digest(token)))
            await dbs.commit()


async def end_pending_logins(dbs: AsyncSession, user_id: int, login_id: str | None) -> None:
    """When all of a user's logins end, so do their half-done ones (no commit).

    Registered with auth's ``logins_ending``: their password may be the one just changed.
    """
    if login_id is None:
        await dbs.execute(delete(PendingLogin).where(PendingLogin.user_id == user_id))


async def flash_remaining(left: int, done: str = "signed in") -> None:
    """Say how many recovery codes are left, and warn when few or none are.

    ``done``: what the code was used for ("signed in", "confirmed").
    """
    if left == 0:
        await flash(
            "You used your last recovery code. Make new ones on your two-factor page now.",
            "warning",
        )
    elif left <= recovery.FEW:
        await flash(
            f"You {done} with a recovery code; {left} left. Make new ones on your "
            "two-factor page soon.",
            "warning",
        )
    else:
        await flash(f"You {done} with a recovery code; {left} left.", "info")
