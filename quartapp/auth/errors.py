"""How the ``auth`` blueprint's forms answer errors, in their own words.

The app's handlers (``web.errors``) make the generic pages. The login form does
better: a lockout says whose it is and how the owner still gets in, and an expired
form or an outage shows the form again with the username kept, so a retry is one
click. They are the blueprint's, so they run only for its routes (Quart picks a blueprint's
handler before the app's); ``create_app`` imports this module to register them.
"""

from __future__ import annotations

from typing import cast

from quart import render_template, request, url_for
from quart.typing import ResponseReturnValue
from quart_wtf.csrf import CSRFError

from ..web import errors
from ..web.forms import FORM_TYPES
from ..web.navigation import requested_path, safe_next
from .credentials import LockedOut
from .forms import LoginForm
from .views import bp

# The owner's way in during a lockout of their username (see throttle.py).
DEVICE_HINT = (
    "If it is your account, a browser or device you have signed in with before can still sign in."
)
# /login/device past its limit (throttle.code_counters): the network's, not an account's.
TOO_MANY_CODES = "There were too many wrong codes from your network."


def _login_form_post() -> bool:
    return (
        request.endpoint == "auth.login"
        and request.method == "POST"
        and request.mimetype in FORM_TYPES
    )


@bp.errorhandler(LockedOut)
async def locked_out(error: LockedOut) -> ResponseReturnValue:
    """The 429 page of the login forms: whose lockout it is, and the way back."""
    if request.endpoint == "auth.trust_device":
        return await errors.lockout_page(
            error,
            message=TOO_MANY_CODES,
            back_url=url_for("auth.trust_device"),
            back_text="Back to the code form",
        )
    if error.by_address:
        message = "There were too many failed attempts to sign in from your network."
        hint = None
    else:
        # The same words whether or not this browser's device cookie was trusted.
        message = "There were too many failed attempts to sign in to this account."
        hint = DEVICE_HINT
    return await errors.lockout_page(
        error,
        message=message,
        hint=hint,
        # The same URL, so a `next` the user was sent with survives the lockout.
        back_url=safe_next(requested_path()) or url_for("auth.login"),
        back_text="Back to the sign-in page",
    )


@bp.errorhandler(CSRFError)
async def form_expired(error: CSRFError) -> ResponseReturnValue:
    """A refused login form is shown again, saying why; other forms get the app's page."""
    if request.endpoint == "auth.login" and request.mimetype in FORM_TYPES:
        await errors.note_csrf_error(error)
        refusal = errors.form_refusal(error)
        page = await login_form_again(refusal.short, refused=refusal.title)
        return page, refusal.status
    return await errors.handle_csrf_error(error)


async def unavailable(error: Exception) -> ResponseReturnValue:
    """A sign-in that could not be checked shows the form again; others, the 503 page."""
    if not _login_form_post():
        return await errors.handle_unavailable(error)
    headers = errors.note_unavailable(error)
    if headers is None:
        return await errors.handle_unexpected(error)
    return await login_form_again(errors.PAGES[503][1], unavailable=True), 503, headers


async def handle_locked_out(error: LockedOut) -> ResponseReturnValue:
    """A lockout on a form whose blueprint says nothing of its own (the app's handler)."""
    return await errors.lockout_page(error)


# Once, at import: a blueprint takes no new handlers once an app has registered it.
for _kind in errors.UNAVAILABLE:
    bp.register_error_handler(_kind, unavailable)


async def login_form_again(error: str, **context: object) -> str:
    """The login form again, with ``error``, a fresh token and the username as typed.

    The username is kept if it was text; the password is never sent back: the
    password field renders without a value.
    """
    form = cast(LoginForm, await LoginForm.create_form())
    if not form.username.validate(form):
        form.username.data = ""
    form.username.errors = []
    return await render_template(
        "auth/login.html",
        form=form,
        error=error,
        next=safe_next(request.args.get("next")),
        **context,
    )
