"""The second factor's forms: a code (TOTP or recovery).

Its confirmations (new recovery codes, turning it off) use ``web.forms.ConfirmForm``.
"""

from __future__ import annotations

from quart_wtf import QuartForm
from wtforms import StringField, SubmitField
from wtforms.validators import DataRequired, Length

from ..auth.forms import PlainText, SentOnce

CODE_HINT = "The 6 digits your authenticator app shows, or one of your recovery codes."


def code_field(missing: str) -> StringField:
    """The ``code`` box: six digits, or a 24-letter recovery code with its dashes."""
    return StringField(
        "Code",
        validators=[
            SentOnce(),
            PlainText(),
            DataRequired(missing),
            Length(max=64, message="That code is too long."),
        ],
    )


class CodeForm(QuartForm):
    """The second step of a login: a TOTP code or a recovery code."""

    code = code_field("Enter the code from your authenticator app, or a recovery code.")
    submit = SubmitField("Continue")


class EnrolForm(QuartForm):
    """Turning TOTP on: the first code from the new key."""

    code = code_field("Enter the 6-digit code your authenticator app shows.")
    submit = SubmitField("Turn on two-factor authentication")
