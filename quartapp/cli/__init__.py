"""Command-line tools on Quart's click CLI: ``quart --app quartapp users ...``.

Each command opens its own engine in its own event loop (click commands are
synchronous), does its work through the same functions the views use, and turns any
refusal into a one-line error and a non-zero exit.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any, TypeVar

import click
from alembic.util import CommandError
from quart import Quart
from quart.cli import ScriptInfo
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from .. import audit, signals
from ..auth import passwords, prune, users
from ..db import connect, schema

T = TypeVar("T")
Work = Callable[[AsyncSession, passwords.Passwords, Mapping[str, Any]], Awaitable[T]]

users_cli = click.Group("users", help="Create, list and manage user accounts.")
db_cli = click.Group("db", help="Migrate the database schema and prune old rows.")


def run(work: Work[T]) -> T:
    """Run ``work`` against the app's database in a fresh event loop."""
    config = load_config()

    async def main() -> T:
        # In development the schema follows the code by itself, as it does for `make run`.
        if config["DATABASE_AUTO_UPGRADE"]:
            await schema.upgrade(config)
        revision = await schema.current(config)
        if revision != schema.head():
            raise click.ClickException(
                f"the database schema is at {revision or 'nothing'}, not {schema.head()}; "
                "run `.venv/bin/quart --app quartapp db upgrade` first"
            )
        async with connect(config) as store, store.sessionmaker() as session:
            return await work(session, passwords.build(config), config)

    try:
        return run_on_database(main())
    except users.AccountError as error:
        raise click.ClickException(str(error)) from None


NO_TERMINAL = (
    "standard input is not a terminal, so the password cannot be asked for; "
    'pass it on one line with --password-stdin, like: echo "$PASSWORD" | '
    ".venv/bin/quart --app quartapp users {command} NAME --password-stdin"
)


def read_password(from_stdin: bool) -> str:
    """The new password: one line of stdin, or typed twice at a prompt without echo."""
    try:
        if from_stdin:
            # Only the line ending is removed: passwords are used exactly as typed.
            password = sys.stdin.readline().removesuffix("\n").removesuffix("\r")
        elif not sys.stdin.isatty():
            # getpass would warn that the input may be echoed, read the pipe or hit its
            # end, and click would then say only "Aborted!".
            command = click.get_current_context().info_name or "create"
            raise click.ClickException(NO_TERMINAL.format(command=command))
        else:
            password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
        # Undecodable bytes arrive as an error here or as surrogates that argon2 cannot
        # encode later; either way, refuse them now in one line instead of a traceback.
        password.encode()
    except UnicodeError:
        raise click.ClickException(
            "the password is not valid UTF-8; check the input's encoding"
        ) from None
    return password


password_stdin = click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the password from the first line of standard input instead of prompting.",
)


@users_cli.command("create")
@click.argument("name")
@password_stdin
def create_command(name: str, password_stdin: bool) -> None:
    """Create the user NAME."""
    # Fail on a bad or taken name before asking for the password twice.
    username = run(lambda session, _p, config: users.available_username(session, config, name))
    password = read_password(password_stdin)
    run(lambda session, hasher, config: users.create_user(session, hasher, config, name, password))
    audit.log("user_created", username)
    click.echo(f"created user {username!r}")


@users_cli.command("set-password")
@click.argument("name")
@password_stdin
def set_password_command(name: str, password_stdin: bool) -> None:
    """Change NAME's password and end all of NAME's logins."""
    username = run(lambda session, _p, _c: _existing(session, name))
    password = read_password(password_stdin)
    ended = run(
        lambda session, hasher, config: users.set_password(session, hasher, config, name, password)
    )
    signals.send(signals.password_changed, username=username, sessions_ended=ended)
    click.echo(f"changed the password of {username!r}; ended {ended} login(s)")


async def _existing(session: AsyncSession, name: str) -> str:
    return (await users.get_user(session, name)).username


@users_cli.command("delete")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def delete_command(name: str, yes: bool) -> None:
    """Delete the user NAME and end their logins."""
    username = run(lambda session, _p, _c: _existing(session, name))
    if not yes:
        click.confirm(f"Delete user {username!r}?", abort=True)
    run(lambda session, _p, _c: users.delete_user(session, name))
    audit.log("user_deleted", username)
    click.echo(f"deleted user {username!r}")


@users_cli.command("list")
def list_command() -> None:
    """List the users, one per line, with when they were created."""
    everyone = run(lambda session, _p, _c: users.list_users(session))
    for user in everyone:
        click.echo(f"{user.username}\t{user.created_at:%Y-%m-%d %H:%M}")
    if not everyone:
        click.echo("no users", err=True)


@users_cli.command("revoke-sessions")
@click.argument("name")
def revoke_command(name: str) -> None:
    """End every login of NAME, on every device, and forget NAME's trusted devices."""
    ended = run(lambda session, _p, _c: users.revoke_logins(session, name))
    username = users.normalize_username(name)
    signals.send(signals.session_ended, username=username, count=ended, everywhere=True)
    click.echo(f"ended {ended} login(s) of {username!r}")


@users_cli.command("unlock")
@click.argument("name")
def unlock_command(name: str) -> None:
    """Lift a lockout of NAME at once (for an owner with no trusted device)."""
    cleared = run(lambda session, _p, _c: users.unlock(session, name))
    username = users.normalize_username(name)
    audit.log("unlocked", username, counters_cleared=cleared)
    click.echo(f"unlocked {username!r}; cleared {cleared} throttle counter(s)")


def load_config() -> Mapping[str, Any]:
    """The settings of the app named by ``--app``."""
    app: Quart = click.get_current_context().ensure_object(ScriptInfo).load_app()
    return app.config


def run_on_database(work: Coroutine[Any, Any, T]) -> T:
    """Run a database coroutine, turning a failure into one line and exit 1."""
    try:
        return asyncio.run(work)
    except (SQLAlchemyError, OSError, TimeoutError) as error:
        reason = (str(error).splitlines() or [type(error).__name__])[0]
        raise click.ClickException(f"cannot use the database: {reason}") from None
    except CommandError as error:
        raise click.ClickException(str(error)) from None


@db_cli.command("upgrade")
@click.argument("revision", default="head")
def upgrade_command(revision: str) -> None:
    """Apply migrations up to REVISION (default: the newest)."""
    before, after = run_on_database(schema.upgrade(load_config(), revision))
    if before == after:
        click.echo(f"database schema is at {after}; nothing to apply")
    else:
        click.echo(f"database schema upgraded from {before or 'empty'} to {after}")


@db_cli.command("downgrade")
@click.argument("revision", default="-1")
def downgrade_command(revision: str) -> None:
    """Undo migrations down to REVISION (default: one step; 'base' for all)."""
    before, after = run_on_database(schema.downgrade(load_config(), revision))
    click.echo(f"database schema downgraded from {before or 'empty'} to {after}")


@db_cli.command("current")
def current_command() -> None:
    """Show the database's revision and whether it is the newest."""
    revision = run_on_database(schema.current(load_config()))
    newest = schema.head()
    if revision == newest:
        click.echo(f"{revision} (head)")
    else:
        click.echo(f"{revision or 'empty'} (head is {newest}; run db upgrade)")


@db_cli.command("revision")
@click.option("-m", "--message", required=True, help="What the change is and why.")
def revision_command(message: str) -> None:
    """Write a migration for what the models changed (for developers)."""
    path = run_on_database(schema.revision(load_config(), message))
    click.echo(f"wrote {path}; review it, then run db upgrade")


@db_cli.command("prune")
def prune_command() -> None:
    """Delete expired logins and stale throttle counters."""
    config = load_config()

    async def work() -> prune.Pruned:
        async with connect(config) as store:
            return await prune.prune_all(store.sessionmaker, config)

    done = run_on_database(work())
    click.echo(f"pruned {done.logins} expired login(s) and {done.counters} throttle counter(s)")


@click.command("init-db")
@click.pass_context
def init_db_command(context: click.Context) -> None:
    """Same as ``db upgrade`` (kept for old release scripts)."""
    context.invoke(upgrade_command)


def init_app(app: Quart) -> None:
    """Add the commands to ``quart --app quartapp``."""
    app.cli.add_command(users_cli)
    app.cli.add_command(db_cli)
    app.cli.add_command(init_db_command)
