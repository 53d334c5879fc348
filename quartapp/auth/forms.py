"""The login forms, and the field checks every form of the app uses.

Quart-WTF adds the CSRF field to each form. The account pages' forms are in
:mod:`quartapp.account.forms` and use the checks defined here.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from quart import current_app, g, session
from quart_wtf import QuartForm
from quart_wtf.utils import generate_csrf
from wtforms import BooleanField, Field, PasswordField, StringField, SubmitField
from wtforms.validators import DataRequired, Length, StopValidation

from . import settings
from .settings import AuthSettings

# The nav's logout form on every logged-in page carries the signed form of the
# session's CSRF token. Signing it (an HMAC and a timestamp) was about a tenth of a
# page; a signed token is reused for this long, so it expires at most this much
# sooner than WTF_CSRF_TIME_LIMIT says (59 minutes instead of 60 by default).
CSRF_REUSE_SECONDS = 60
CSRF_REUSE_MAX = 10_000
# The session's raw token, the key it was signed with -> (signed, when).
_signed: dict[tuple[str, str | bytes], tuple[str, float]] = {}

# U+FFFD is what undecodable bytes become when the form is parsed: it means the client
# sent invalid UTF-8, which no keyboard produces.
REPLACEMENT = "\ufffd"


class SentOnce:
    """Refuse a field that appears more than once in the request.

    WTForms would quietly take the first copy; a form posted by our page never repeats
    a field, so a repeat is a forged request and gets an error instead of a guess.
    """

    def __call__(self, form: QuartForm, field: Field) -> None:
        if len(field.raw_data or ()) > 1:
            raise StopValidation("Send this field only once.")


class PlainText:
    """Refuse anything but plain text: files, control characters (NUL included) and
    invalid UTF-8.

    It runs before ``MaxLength``, which would fail with a TypeError on an uploaded file.
    """

    def __init__(self, *, allow_whitespace: bool = False) -> None:
        self.allowed = {"\t"} if allow_whitespace else set()

    def __call__(self, form: QuartForm, field: Field) -> None:
        # A multipart request can send any field as a file; the form then holds a
        # FileStorage where text is expected.
        if any(not isinstance(raw, str) for raw in field.raw_data or ()):
            raise StopValidation("Send this field as text.")
        value: Any = field.data or ""
        for char in value:
            if char == REPLACEMENT or (
                (ord(char) < 0x20 or 0x7F <= ord(char) < 0xA0) and char not in self.allowed
            ):
                raise StopValidation("This field contains characters that are not allowed.")


class MaxLength:
    """At most as many characters as ``limit`` of the settings allows, read when validating.

    The limits live in the settings alone, so raising ``USERNAME_MAX_LENGTH`` raises it
    for the form, the CLI and the database check together.
    """

    def __init__(self, limit: Callable[[AuthSettings], int]) -> None:
        self.limit = limit

    def __call__(self, form: QuartForm, field: Field) -> None:
        limit = self.limit(settings.current())
        if len(field.data or "") > limit:
            raise StopValidation(f"Field cannot be longer than {limit} characters.")


def password_checks(missing: str) -> list[Any]:
    """The validators of every password box; ``missing`` says what to type in it.

    Passwords keep their spaces and tabs exactly as typed (``allow_whitespace``).
    """
    return [
        SentOnce(),
        PlainText(allow_whitespace=True),
        DataRequired(missing),
        MaxLength(lambda config: config.password_max_length),
    ]


class LoginForm(QuartForm):
    """Username, password and "remember me", named as in microblog's ``LoginForm``."""

    username = StringField(
        "Username",
        validators=[
            SentOnce(),
            PlainText(),
            DataRequired("Enter your username."),
            MaxLength(lambda config: config.username_max_length),
        ],
    )
    password = PasswordField("Password", validators=password_checks("Enter your password."))
    remember_me = BooleanField("Remember Me", validators=[SentOnce()])
    submit = SubmitField("Sign in")


class DeviceCodeForm(QuartForm):
    """The one-time code that makes a browser a trusted device (see quartapp.auth.devices)."""

    code = StringField(
        "Code",
        validators=[
            SentOnce(),
            PlainText(),
            DataRequired("Enter the code from your sessions page."),
            Length(max=32, message="The code is 12 letters and digits."),
        ],
    )
    submit = SubmitField("Trust this browser")


class ConfirmForm(QuartForm):
    """Re-authentication (quartapp.auth.reauth): the password, and a code where the user
    has a second factor. ``code`` is optional here; each factor's confirmer requires it.
    """

    password = PasswordField("Password", validators=password_checks("Enter your password."))
    code = StringField(
        "Code",
        validators=[SentOnce(), PlainText(), Length(max=64, message="That code is too long.")],
    )
    submit = SubmitField("Confirm")


def csrf_token() -> str:
    """The signed CSRF token for this request's session: Quart-WTF's ``generate_csrf``,
    reusing a signature made in the last :data:`CSRF_REUSE_SECONDS` for the same session.

    Sets ``g.csrf_token`` as ``generate_csrf`` does, so the forms of the same page get
    the same token. It is what the templates' ``csrf_token()`` calls.
    """
    field = current_app.config.get("WTF_CSRF_FIELD_NAME", "csrf_token")
    signed = g.get(field)
    if signed is not None:
        return str(signed)
    raw = session.get(field)
    key = current_app.config.get("WTF_CSRF_SECRET_KEY") or current_app.secret_key
    now = time.monotonic()
    if isinstance(raw, str) and key:
        known = _signed.get((raw, key))
        if known is not None and now - known[1] < CSRF_REUSE_SECONDS:
            setattr(g, field, known[0])
            return known[0]
    signed = str(generate_csrf())
    raw = session.get(field)
    if isinstance(raw, str) and key:
        if len(_signed) >= CSRF_REUSE_MAX:
            _signed.clear()
        _signed[(raw, key)] = (signed, now)
    return signed
