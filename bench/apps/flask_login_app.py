"""The tutorial's app on Flask-Login and Flask-SQLAlchemy: a user row per request.

The usual next step after the tutorial: users in a SQLite file (``BENCH_DATABASE``),
and Flask-Login's ``user_loader`` reading the logged-in user on every request. It is
the second anchor of ``/hello``, the closest to what quartapp does per request.
``BENCH_DATABASE_URL``, when set, is a SQLAlchemy URL used instead of the file: the
PostgreSQL scenario gives it ``postgresql+psycopg://...`` (Flask-SQLAlchemy's default
pool of 5 + 10 overflow, as the extension ships).
"""

from __future__ import annotations

import os
import secrets
import tempfile
from pathlib import Path

from flask import Flask, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import (
    LoginManager,
    UserMixin,
    current_user,
    login_required,
    login_user,
    logout_user,
)
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import String, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from werkzeug.security import check_password_hash, generate_password_hash

TEMPLATES = Path(__file__).resolve().parent.parent / "templates" / "flask"
DATABASE = os.environ.get("BENCH_DATABASE") or str(Path(tempfile.gettempdir()) / "flask-login.db")


class Base(DeclarativeBase):
    """Declarative base of the reference app's one table."""


db = SQLAlchemy(model_class=Base)


# db.Model is made at run time by Flask-SQLAlchemy, so mypy cannot use it as a base class.
class User(UserMixin, db.Model):  # type: ignore[name-defined]
    """An account with a hashed password."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))


app = Flask(__name__, template_folder=str(TEMPLATES))
app.secret_key = secrets.token_hex(32)
app.config["SQLALCHEMY_DATABASE_URI"] = (
    os.environ.get("BENCH_DATABASE_URL") or f"sqlite:///{DATABASE}"
)
db.init_app(app)

login_manager = LoginManager(app)
login_manager.login_view = "login"
login_manager.login_message = "You need to login first."


@login_manager.user_loader
def load_user(user_id: str) -> User | None:
    """The one query per request: the logged-in user's row."""
    return db.session.get(User, int(user_id))


with app.app_context():
    db.create_all()
    if db.session.scalar(select(User).where(User.username == "admin")) is None:
        db.session.add(User(username="admin", password_hash=generate_password_hash("admin")))
        db.session.commit()


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
    """The protected page, greeting the user loaded from the database."""
    return render_template("hello.html", username=current_user.username)


@app.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    """The tutorial's form, checked against the users table."""
    error = None
    if request.method == "POST":
        user = db.session.scalar(
            select(User).where(User.username == request.form.get("username", ""))
        )
        if user is None or not check_password_hash(
            user.password_hash, request.form.get("password", "")
        ):
            error = "Invalid Credentials. Please try again."
        else:
            login_user(user)
            flash("You were logged in.")
            return redirect(url_for("hello"))
    return render_template("login.html", error=error)


@app.route("/logout")
@login_required
def logout() -> ResponseReturnValue:
    """Forget the login."""
    logout_user()
    flash("You were logged out")
    return redirect(url_for("welcome"))
