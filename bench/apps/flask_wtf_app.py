"""The tutorial's app with a Flask-WTF ``LoginForm``: the anchor of ``GET /login``.

Rendering the form costs what quartapp's does in kind: a CSRF token signed into the
session cookie and WTForms widgets in a Jinja template.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from flask import Flask, flash, redirect, render_template, session, url_for
from flask.typing import ResponseReturnValue
from flask_wtf import CSRFProtect, FlaskForm
from wtforms import BooleanField, PasswordField, StringField, SubmitField
from wtforms.validators import DataRequired, Length

TEMPLATES = Path(__file__).resolve().parent.parent / "templates" / "flask"

app = Flask(__name__, template_folder=str(TEMPLATES))
app.secret_key = secrets.token_hex(32)
csrf = CSRFProtect(app)


class LoginForm(FlaskForm):
    """Username, password and "remember me", as quartapp's form has."""

    username = StringField("Username", validators=[DataRequired(), Length(max=64)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1024)])
    remember = BooleanField("Remember me")
    submit = SubmitField("Log in")


@app.route("/")
def home() -> ResponseReturnValue:
    """The landing page."""
    return render_template("home.html")


@app.route("/welcome")
def welcome() -> ResponseReturnValue:
    """A public page."""
    return render_template("welcome.html")


@app.route("/hello")
def hello() -> ResponseReturnValue:
    """The protected page."""
    if "logged_in" not in session:
        flash("You need to login first.")
        return redirect(url_for("login"))
    return render_template("hello.html", username="admin")


@app.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    """The form with its CSRF token, checked against the hard-coded admin/admin."""
    form = LoginForm()
    error = None
    if form.validate_on_submit():
        if form.username.data == "admin" and form.password.data == "admin":
            session.clear()
            session["logged_in"] = True
            flash("You were logged in.")
            return redirect(url_for("hello"))
        error = "Invalid Credentials. Please try again."
    return render_template("login.html", form=form, error=error)
