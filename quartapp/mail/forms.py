"""The mail pages' forms, named as the issue's contract says (``email``, ``password``,
``password2``). Quart-WTF adds the CSRF field to each one."""

from __future__ import annotations

from quart_wtf import QuartForm
from wtforms import EmailField, PasswordField, SubmitField
from wtforms.validators import DataRequired, EqualTo, Length

from ..auth.forms import PlainText, SentOnce, password_checks
from .models import ADDRESS_COLUMN


def email_checks() -> list[object]:
    """The validators of an address box; its syntax is checked by the flow's normaliser."""
    return [
        SentOnce(),
        PlainText(),
        DataRequired("Enter an email address."),
        Length(max=ADDRESS_COLUMN, message=f"Use at most {ADDRESS_COLUMN} characters."),
    ]


class ResetRequestForm(QuartForm):
    """The address a reset link goes to, as in microblog's ``ResetPasswordRequestForm``."""

    email = EmailField("Email", validators=email_checks())
    submit = SubmitField("Request Password Reset")


class ResetPasswordForm(QuartForm):
    """The new password twice, as in microblog's ``ResetPasswordForm``.

    The policy (length, guessability) is the one every password meets, checked by
    auth's password flow; the validators here only bound what a request may send.
    """

    password = PasswordField("New password", validators=password_checks("Enter a new password."))
    password2 = PasswordField(
        "Repeat the new password",
        validators=[
            *password_checks("Enter the new password again."),
            EqualTo("password", "Enter the same new password in both boxes."),
        ],
    )
    submit = SubmitField("Set the new password")


class EmailForm(QuartForm):
    """A new address for the account: a link to confirm it is sent to it."""

    email = EmailField("New email address", validators=email_checks())
    submit = SubmitField("Send a confirmation link")


class ConfirmEmailForm(QuartForm):
    """The button a confirmation link's page shows: a GET never confirms."""

    submit = SubmitField("Confirm this address")
