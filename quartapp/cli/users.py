"""``quart --app quartapp users ...``: create, list and manage user accounts.

:func:`for_app` builds the group an app offers: these commands, plus what its features
registered with auth (:class:`~quartapp.auth.registry.UserOption`, ``UserCommand``,
``UserColumn``), so a feature adds to ``users`` without this module naming it.
"""

from __future__ import annotations

import copy
import sys
from typing import Any

import click
from quart import Quart
from sqlalchemy.ext.asyncio import AsyncSession

from .. import bootstrap, signals
from ..auth import flows, throttle, users
from ..auth.passwords import Passwords
from ..auth.registry import UserCommand, registry
from ..auth.settings import AuthSettings
from ..twofactor import flows as twofactor_flows
from .running import load_app, load_settings, run

users_cli = click.Group("users", help="Create, list and manage user accounts.")


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
def create_command(name: str, password_stdin: bool, **options: Any) -> None:
    """Create the user NAME."""
    extras = registry(load_app()).user_options

    # Fail on a bad or taken name (or a feature's option) before asking for the password.
    async def check(session: AsyncSession, _p: Passwords, config: AuthSettings) -> str:
        username = await users.available_username(session, config, name)
        for extra in extras:
            await extra.check(session, config, options)
        return username

    username = run(check)
    password = read_password(password_stdin)
    run(
        lambda session, hasher, config: flows.create_account(
            session, config, hasher, name=name, password=password
        )
    )
    click.echo(f"created user {username!r}")

    async def apply(session: AsyncSession, _p: Passwords, config: AuthSettings) -> list[str]:
        user_id = (await users.get_user(session, name)).id
        lines = [await extra.apply(session, config, user_id, options) for extra in extras]
        return [line for line in lines if line]

    if extras:
        for line in run(apply):
            click.echo(line)


@users_cli.command("set-password")
@click.argument("name")
@password_stdin
def set_password_command(name: str, password_stdin: bool) -> None:
    """Change NAME's password and end all of NAME's logins."""
    username = run(lambda session, _p, _c: _existing(session, name))
    password = read_password(password_stdin)

    async def change(session: AsyncSession, hasher: Passwords, config: AuthSettings) -> int:
        user = await users.get_user(session, name)
        changed = await flows.change_password(
            session,
            config,
            hasher,
            user_id=user.id,
            username=user.username,
            new_password=password,
        )
        return changed.ended

    ended = run(change)
    click.echo(f"changed the password of {username!r}; ended {ended} login(s)")


async def _existing(session: AsyncSession, name: str) -> str:
    return (await users.get_user(session, name)).username


@users_cli.command("delete")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def delete_command(name: str, yes: bool) -> None:
    """Delete the user NAME and everything stored about them, and end their logins."""
    username = run(lambda session, _p, _c: _existing(session, name))
    if not yes:
        click.confirm(f"Delete user {username!r}?", abort=True)

    async def delete(session: AsyncSession, _p: Passwords, config: AuthSettings) -> int:
        # One flow with /account/delete (auth.flows).
        user = await users.get_user(session, name)
        return await flows.delete_account(
            session, config, user_id=user.id, username=user.username, by="admin"
        )

    run(delete)
    bootstrap.discard_initial_password(load_settings(), username)
    click.echo(f"deleted user {username!r}")


@users_cli.command("list")
@click.option("--locked", is_flag=True, help="Only users whose name is locked out now.")
def list_command(locked: bool, **flags: bool) -> None:
    """List the users, one per line, with when they were created."""
    found_hooks = registry(load_app())
    columns = found_hooks.user_columns
    filters = [extra for extra in found_hooks.user_filters if flags.get(extra.name)]

    async def listing(
        session: AsyncSession, _p: Passwords, config: AuthSettings
    ) -> list[list[str]]:
        found = list(await users.list_users(session))
        if locked:
            names = await throttle.locked_usernames(session, config, [u.username for u in found])
            found = [user for user in found if user.username in names]
        for only in filters:
            kept = await only.keep(session, [user.id for user in found])
            found = [user for user in found if user.id in kept]
        ids = [user.id for user in found]
        extra = [await column(session, ids) for column in columns]
        return [
            [user.username, f"{user.created_at:%Y-%m-%d %H:%M}"]
            + [values.get(user.id, "") for values in extra]
            for user in found
        ]

    everyone = run(listing)
    for row in everyone:
        click.echo("\t".join(row))
    if not everyone:
        click.echo("no users" if not (locked or filters) else "no users match", err=True)


@users_cli.command("revoke-sessions")
@click.argument("name")
def revoke_command(name: str) -> None:
    """End every login of NAME, on every device, and forget NAME's trusted devices."""

    async def revoke(session: AsyncSession, _p: Passwords, _c: AuthSettings) -> int:
        user = await users.get_user(session, name)
        return await flows.end_logins(session, user_id=user.id, username=user.username)

    ended = run(revoke)
    username = users.normalize_username(name)
    click.echo(f"ended {ended} login(s) of {username!r}")


@users_cli.command("unlock")
@click.argument("name")
def unlock_command(name: str) -> None:
    """Lift a lockout of NAME at once (for an owner with no trusted device)."""
    cleared = run(lambda session, _p, _c: users.unlock(session, name))
    username = users.normalize_username(name)
    signals.send(signals.unlocked, username=username, counters_cleared=cleared)
    click.echo(f"unlocked {username!r}; cleared {cleared} throttle counter(s)")


@users_cli.command("reset-2fa")
@click.argument("name")
def reset_two_factor_command(name: str) -> None:
    """Remove NAME's TOTP key and recovery codes, and end every login of NAME."""

    async def reset(session: AsyncSession, _p: Passwords, _c: AuthSettings) -> tuple[bool, int]:
        user = await users.get_user(session, name)
        return await twofactor_flows.reset(session, user_id=user.id, username=user.username)

    removed, ended = run(reset)
    username = users.normalize_username(name)
    state = "removed two-factor authentication" if removed else "no two-factor authentication"
    click.echo(f"{state} of {username!r}; ended {ended} login(s)")


def for_app(app: Quart) -> click.Group:
    """The ``users`` group of ``app``: these commands and what its features registered.

    A copy per app, so that building one app (a test builds many) never changes the
    commands of another.
    """
    found = registry(app)
    create = copy.copy(create_command)
    create.params = [
        *create_command.params,
        *(param for option in found.user_options for param in option.params),
    ]
    listing = copy.copy(list_command)
    listing.params = [
        *list_command.params,
        *(
            click.Option(
                [f"--{extra.name.replace('_', '-')}", extra.name], is_flag=True, help=extra.help
            )
            for extra in found.user_filters
        ),
    ]
    group = click.Group("users", help=users_cli.help)
    swapped = {id(create_command): create, id(list_command): listing}
    for command in users_cli.commands.values():
        group.add_command(swapped.get(id(command), command))
    for extra in found.user_commands:
        group.add_command(_feature_command(extra))
    return group


def _feature_command(extra: UserCommand) -> click.Command:
    """A click command that runs a feature's work like the commands above."""

    def callback(**values: Any) -> None:
        click.echo(run(lambda dbs, hasher, config: extra.work(dbs, hasher, config, values)))

    return click.Command(extra.name, callback=callback, params=list(extra.params), help=extra.help)
