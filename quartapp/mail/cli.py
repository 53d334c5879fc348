"""What mail adds to the ``users`` commands, through auth's registry (the CLI builds them):

- ``users create NAME --email ADDRESS [--unconfirmed]``;
- ``users set-email NAME ADDRESS [--unconfirmed]``;
- a column of ``users list``: each address, and whether it is confirmed.

An address an admin sets counts as confirmed; ``--unconfirmed`` sends a confirmation
link to it instead, as the account page does. A bad or taken address, or an unknown
user, is one ``Error:`` line and exit 1 (click's own usage errors exit 2).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import click
from sqlalchemy.ext.asyncio import AsyncSession

from ..auth import users
from ..auth.passwords import Passwords
from ..auth.registry import Registry, UserCommand, UserOption
from ..auth.settings import AuthSettings
from . import addresses, current, flows

UNCONFIRMED_HELP = "Send a confirmation link to the address instead of vouching for it."


async def _check_new(
    session: AsyncSession, _config: AuthSettings, values: Mapping[str, Any]
) -> None:
    """Before ``users create`` asks for the password: the address is usable."""
    text = values.get("email")
    if text is None:
        return
    normal = addresses.normalise(text)
    if await addresses.owner(session, normal.key) is not None:
        raise addresses.AddressError(f"{normal.address!r} is another account's address")


async def _apply_new(
    session: AsyncSession, _config: AuthSettings, user_id: int, values: Mapping[str, Any]
) -> str | None:
    """Once the user exists: set the address as ``set-email`` would."""
    text = values.get("email")
    if text is None:
        return None
    username = await session.scalar(addresses.username_query(user_id))
    return await flows.set_by_admin(
        session,
        current(),
        user_id=user_id,
        username=username or "",
        text=text,
        confirmed=not values.get("unconfirmed"),
    )


async def _set_email(
    session: AsyncSession, _p: Passwords, _c: AuthSettings, values: Mapping[str, Any]
) -> str:
    user = await users.get_user(session, values["name"])
    return await flows.set_by_admin(
        session,
        current(),
        user_id=user.id,
        username=user.username,
        text=values["address"],
        confirmed=not values["unconfirmed"],
    )


def register(hooks: Registry) -> None:
    """Add mail's option, command and column to the ``users`` group."""
    hooks.user_options.append(
        UserOption(
            params=(
                click.Option(["--email"], metavar="ADDRESS", help="The user's email address."),
                click.Option(["--unconfirmed"], is_flag=True, help=UNCONFIRMED_HELP),
            ),
            check=_check_new,
            apply=_apply_new,
        )
    )
    hooks.user_commands.append(
        UserCommand(
            name="set-email",
            help="Set NAME's email address to ADDRESS (confirmed, unless --unconfirmed).",
            params=(
                click.Argument(["name"]),
                click.Argument(["address"]),
                click.Option(["--unconfirmed"], is_flag=True, help=UNCONFIRMED_HELP),
            ),
            work=_set_email,
        )
    )
    hooks.user_columns.append(addresses.listing)
