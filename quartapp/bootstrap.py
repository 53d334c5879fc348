"""The first run: an ``admin`` account with a random password on a new development machine."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from quart import current_app
from sqlalchemy.ext.asyncio import AsyncSession

from .auth.passwords import Passwords, passwords
from .auth.users import AccountError, count_users, create_user
from .db import db
from .files import write_private

log = logging.getLogger(__name__)

INITIAL_ADMIN_FILE = "initial-admin-password"


async def create_initial_admin(
    session: AsyncSession, passwords: Passwords, config: Mapping[str, Any]
) -> str | None:
    """On a development machine with no accounts, create ``admin`` with a random password.

    The password goes to ``<instance>/initial-admin-password`` (mode 0600) and to the
    log once, so a newcomer can log in right after ``make run``. Returns the password,
    or None when nothing was created.
    """
    if config["ENV"] != "development" or not config["INITIAL_ADMIN"]:
        return None
    if await count_users(session):
        return None
    password = secrets.token_urlsafe(18)
    try:
        await create_user(session, passwords, config, "admin", password)
    except AccountError:
        return None  # another worker got there first
    path = Path(config["INSTANCE_PATH"]) / INITIAL_ADMIN_FILE
    await asyncio.to_thread(write_private, path, password + "\n")
    # The one place a password is logged, on purpose and in development only: it is
    # random, shown once, and a newcomer needs it to log in after `make run`.
    log.warning(
        "created user 'admin' with password %s (also in %s); change it with "
        "`.venv/bin/quart --app quartapp users set-password admin`",
        password,
        path,
    )
    return password


async def create_initial_admin_for_app() -> None:
    """``before_serving`` hook: the first-run admin, in the serving app's database."""
    async with db.session() as session:
        await create_initial_admin(session, passwords(), current_app.config)
