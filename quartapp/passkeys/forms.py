"""The passkey pages' forms. Quart-WTF adds the CSRF field to each one."""

from __future__ import annotations

from quart_wtf import QuartForm
from wtforms import StringField, SubmitField
from wtforms.validators import DataRequired, Length

from ..auth.forms import PlainText, SentOnce
from .models import PASSKEY_NAME_COLUMN


def name_checks(required: bool) -> list[object]:
    """The checks of a passkey's name: plain text of at most the column's length."""
    checks: list[object] = [
        SentOnce(),
        PlainText(),
        Length(
            max=PASSKEY_NAME_COLUMN,
            message=f"Use at most {PASSKEY_NAME_COLUMN} characters for the name.",
        ),
    ]
    if required:
        checks.insert(0, DataRequired("Enter a name for the passkey."))
    return checks


class NewPasskeyForm(QuartForm):
    """The name of a passkey about to be made; the ceremony itself is static/passkeys.js's."""

    name = StringField("Name (optional)", validators=name_checks(required=False))
    submit = SubmitField("Add a passkey")


class RenamePasskeyForm(QuartForm):
    """A passkey's new name."""

    name = StringField("Name", validators=name_checks(required=True))
    submit = SubmitField("Save the name")
