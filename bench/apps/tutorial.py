"""The Flask tutorial's app, as it is taught: admin/admin and ``session['logged_in']``.

Served by gunicorn's sync worker, it is the first anchor of ``/hello``: what the
tutorial's login flow costs with no accounts, no database and no CSRF.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any

from flask import Flask, flash, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue

TEMPLATES = Path(__file__).resolve().parent.parent / "templates" / "flask"

app = Flask(__name__, template_folder=str(TEMPLATES))
# One worker, one run: a key made at start-up is all the tutorial needs.
app.secret_key = secrets.token_hex(32)


def login_required(view: Callable[..., ResponseReturnValue]) -> Callable[..., Any]:
    """Send visitors without ``session['logged_in']`` to the login page."""

    @wraps(view)
    def wrap(*args: Any, **kwargs: Any) -> ResponseReturnValue:
        if "logged_in" in session:
            return view(*args, **kwargs)
        flash("You need to login first.")
        return redirect(url_for("login"))

    return wrap


@app.route("/")
def home() -> ResponseReturnValue:
    """The landing page."""
    return render_template("home.html")


@app.route("/welcome")
def welcome() -> ResponseReturnValue:
    """A public page."""
    return render_template("welcome.html")


@app.route("/hello")
@login_required
def hello() -> ResponseReturnValue:
    """The protected page."""
    return render_template("hello.html", username="admin")


@app.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    """The tutorial's form, checked against the hard-coded admin/admin."""
    error = None
    if request.method == "POST":
        if request.form.get("username") != "admin" or request.form.get("password") != "admin":
            error = "Invalid Credentials. Please try again."
        else:
            session["logged_in"] = True
            flash("You were logged in.")
            return redirect(url_for("hello"))
    return render_template("login.html", error=error)


@app.route("/logout")
@login_required
def logout() -> ResponseReturnValue:
    """Forget the login."""
    session.pop("logged_in", None)
    flash("You were logged out")
    return redirect(url_for("welcome"))
