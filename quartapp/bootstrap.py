"""The first run of a development checkout: its keys, then an ``admin`` account.

These are the only writes that starting the app makes on its own, apart from the
instance folder itself; loading the settings writes nothing (:mod:`.settings`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from quart import Quart
from sqlalchemy.ext.asyncio import AsyncSession

from . import keys, settings, signals
from .auth import flows
from .auth import settings as auth_settings
from .auth.passwords import Passwords, passwords
from .auth.settings import AuthSettings
from .auth.users import AccountError, count_users, create_user
from .db import db
from .files import write_private
from .settings import ConfigError, Part, Settings, load_config

log = logging.getLogger(__name__)

INITIAL_ADMIN_FILE = "initial-admin-password"
INITIAL_ADMIN = "admin"


def prepare_instance(
    overrides: Mapping[str, Any] | None = None, parts: Iterable[Part] = ()
) -> dict[str, Any]:
    """The settings to serve with, after giving a fresh development checkout its keys.

    Without a configured ``SECRET_KEY`` (development only: production refuses that),
    keys are generated into ``<instance>/secrets.toml`` so that ``make run`` just works,
    and the settings are loaded again with them. ``create_app`` and ``python -m
    quartapp.serve`` call this; hypercorn's workers may all get here at once on a fresh
    checkout, and one of them creates the file while the rest read it, so that they all
    sign with the same keys. ``parts`` are the features' rows (``quartapp.setting_parts``).
    """
    parts = tuple(parts)
    config = load_config(overrides, parts)
    if config["SECRET_KEY"]:
        return config
    try:
        path, created = keys.ensure_secrets(Path(config["INSTANCE_PATH"]))
    except keys.KeyFileError as error:
        raise ConfigError(f"SECRET_KEY is not set and {error}") from None
    if created:
        log.warning("no SECRET_KEY was configured; generated one into %s", path)
    config = load_config(overrides, parts)
    if not config["SECRET_KEY"]:
        raise ConfigError(
            f"SECRET_KEY is not set and {path} has none; run `python -m quartapp.keys "
            "--force` to replace that file, or set SECRET_KEY"
        )
    return config


async def create_initial_admin(
    session: AsyncSession, passwords: Passwords, config: AuthSettings
) -> str | None:
    """On a development machine with no accounts, create ``admin`` with a random password.

    The password goes to ``<instance>/initial-admin-password`` (mode 0600) and to the
    log once, so a newcomer can log in right after ``make run``. Returns the password,
    or None when nothing was created.
    """
    if config.site.env != "development" or not config.initial_admin:
        return None
    if await count_users(session):
        return None
    password = secrets.token_urlsafe(18)
    try:
        await create_user(session, passwords, config, INITIAL_ADMIN, password)
    except AccountError:
        return None  # another worker got there first
    path = Path(config.site.instance_path) / INITIAL_ADMIN_FILE
    await asyncio.to_thread(write_private, path, password + "\n")
    # The one place a password is logged, on purpose and in development only: it is
    # random, shown once, and a newcomer needs it to log in after `make run`.
    log.warning(
        "created user 'admin' with password %s (also in %s, until it is changed); sign "
        "in and change it at /account/password, or with "
        "`.venv/bin/quart --app quartapp users set-password admin`",
        password,
        path,
    )
    return password


def discard_initial_password(config: Settings, username: str) -> bool:
    """Delete the first-run password file once ``admin`` has a password of its own.

    Called when a password is set (the account page, ``users set-password``) and when
    the user is deleted, so the file never holds a password that is out of date.
    Returns whether a file was deleted.
    """
    if username != INITIAL_ADMIN:
        return False
    path = Path(config.instance_path) / INITIAL_ADMIN_FILE
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    log.info("deleted %s: the admin's password was changed", path)
    return True


@signals.password_changed.connect
def _password_changed(sender: object, *, username: str, **_: object) -> None:
    """Whoever changed the admin's password (the account page, ``users set-password``),
    the first-run file goes. An unlink of one small file, and only for ``admin``: no
    thread is worth it."""
    if username == INITIAL_ADMIN and isinstance(sender, Quart):
        discard_initial_password(settings.of(sender), username)


@signals.user_deleted.connect
def _user_deleted(sender: object, *, pseudonym: str, **_: object) -> None:
    """Whoever deleted the admin (``/account/delete``, ``users delete``), the first-run
    file goes. The signal carries only the name's pseudonym: the admin's is computed."""
    if isinstance(sender, Quart) and pseudonym == flows.pseudonym(
        auth_settings.of(sender), INITIAL_ADMIN
    ):
        discard_initial_password(settings.of(sender), INITIAL_ADMIN)


async def create_initial_admin_for_app() -> None:
    """``before_serving`` hook: the first-run admin, in the serving app's database."""
    async with db.session() as session:
        await create_initial_admin(session, passwords(), auth_settings.current())
