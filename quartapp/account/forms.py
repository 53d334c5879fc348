"""The account pages' forms. Quart-WTF adds the CSRF field to each one."""

from __future__ import annotations

from quart_wtf import QuartForm
from wtforms import HiddenField, PasswordField, StringField, SubmitField
from wtforms.validators import DataRequired, EqualTo, Length

from ..auth.forms import MaxLength, PlainText, SentOnce, password_checks


class ChangePasswordForm(QuartForm):
    """The current password, then the new one twice, named as in microblog.

    The new password's policy (length from the config, guessability) is checked by
    the view with :func:`quartapp.auth.users.check_password`, as the CLI does; the
    ``Length`` here only bounds what a request may make the server look at.
    """

    current_password = PasswordField(
        "Current password", validators=password_checks("Enter your current password.")
    )
    new_password = PasswordField(
        "New password", validators=password_checks("Enter a new password.")
    )
    new_password2 = PasswordField(
        "Confirm new password",
        validators=[
            *password_checks("Enter the new password again."),
            EqualTo("new_password", "Enter the same new password in both boxes."),
        ],
    )
    submit = SubmitField("Change password")


class EndSessionForm(QuartForm):
    """Ends one of the user's other logins, named by its id on the sessions page."""

    login = HiddenField(
        validators=[SentOnce(), PlainText(), DataRequired(), Length(min=32, max=32)],
    )


class DeleteAccountForm(QuartForm):
    """Closing the account: the person types their username to say they mean it."""

    username = StringField(
        "Your username",
        validators=[
            SentOnce(),
            PlainText(),
            DataRequired("Type your username to close your account."),
            MaxLength(lambda config: config.username_max_length),
        ],
    )
    submit = SubmitField("Close my account")
