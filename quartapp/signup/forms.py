"""The sign-up pages' forms, named as the issue's contract says (``username``,
``email``, ``password``, ``password2``). Quart-WTF adds the CSRF field to each one."""

from __future__ import annotations

from quart_wtf import QuartForm
from wtforms import EmailField, PasswordField, StringField, SubmitField
from wtforms.validators import DataRequired, EqualTo

from ..auth.forms import MaxLength, PlainText, SentOnce, password_checks
from ..mail.forms import email_checks


class RegistrationForm(QuartForm):
    """A new account, as microblog's ``RegistrationForm``: the username's rules and the
    password policy are auth's, checked by the flow."""

    username = StringField(
        "Username",
        validators=[
            SentOnce(),
            PlainText(),
            DataRequired("Enter a username."),
            MaxLength(lambda config: config.username_max_length),
        ],
    )
    email = EmailField("Email", validators=email_checks())
    password = PasswordField("Password", validators=password_checks("Enter a password."))
    password2 = PasswordField(
        "Repeat Password",
        validators=[
            *password_checks("Enter the password again."),
            EqualTo("password", "Enter the same password in both boxes."),
        ],
    )
    submit = SubmitField("Register")


class ConfirmForm(QuartForm):
    """The button a confirmation link's page shows: a GET never confirms."""

    submit = SubmitField("Confirm my email address")


class ResendForm(QuartForm):
    """The one thing an unconfirmed account may do: have the link sent again."""

    submit = SubmitField("Send the email again")
