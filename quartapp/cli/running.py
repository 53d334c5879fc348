"""What every command shares: the app's settings, a fresh event loop, one-line errors.

Each command opens its own engine in its own event loop (click commands are
synchronous), does its work through the same functions the views use, and turns any
refusal into a one-line error and a non-zero exit.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import click
from quart import Quart
from quart.cli import ScriptInfo
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from .. import settings
from ..auth import passwords, users
from ..auth import settings as auth_settings
from ..auth.settings import AuthSettings
from ..db import connect, schema
from ..settings import ConfigError, Settings

T = TypeVar("T")
Work = Callable[[AsyncSession, passwords.Passwords, AuthSettings], Awaitable[T]]


def run(work: Work[T]) -> T:
    """Run ``work`` against the app's database in a fresh event loop."""
    config = load_auth_settings()
    site = config.site

    async def main() -> T:
        # In development the schema follows the code by itself, as it does for `make run`.
        if site.database_auto_upgrade:
            await schema.upgrade(site)
        revision = await schema.current(site)
        if revision != schema.head():
            raise click.ClickException(
                f"the database schema is at {revision or 'nothing'}, not {schema.head()}; "
                "run `.venv/bin/quart --app quartapp db upgrade` first"
            )
        async with connect(site) as store, store.sessionmaker() as session:
            return await work(session, passwords.build(config), config)

    try:
        return run_on_database(main())
    except users.AccountError as error:
        raise click.ClickException(str(error)) from None


def refuse(error: ConfigError) -> None:
    """Within a CLI command, turn a settings refusal into click's one ``Error:`` line.

    ``quart --app quartapp ...`` builds the app while it looks the command up; a plain
    exception there would end in a traceback. Elsewhere (tests, the server) the
    :class:`ConfigError` is left to its caller.
    """
    if click.get_current_context(silent=True) is not None:
        raise click.ClickException(error.message) from None


def load_app() -> Quart:
    """The app named by ``--app`` (built once per command)."""
    app: Quart = click.get_current_context().ensure_object(ScriptInfo).load_app()
    return app


def load_settings() -> Settings:
    """The base settings of the app named by ``--app``."""
    return settings.of(load_app())


def load_auth_settings() -> AuthSettings:
    """auth's settings of the app named by ``--app``."""
    return auth_settings.of(load_app())


def run_on_database(work: Coroutine[Any, Any, T]) -> T:
    """Run a database coroutine in the app's context, turning a failure into one line
    and exit 1.

    In the app's context so that the flows a command calls find what the features
    registered (auth's registry: what ends with a user's logins, the pruners).
    """

    async def in_app_context() -> T:
        async with load_app().app_context():
            return await work

    try:
        return asyncio.run(in_app_context())
    except (SQLAlchemyError, OSError, TimeoutError) as error:
        reason = (str(error).splitlines() or [type(error).__name__])[0]
        raise click.ClickException(f"cannot use the database: {reason}") from None
    except schema.MigrationError as error:
        raise click.ClickException(str(error)) from None
