"""What sign-up adds to the ``users`` commands, through auth's registry:

- ``users confirm NAME``: confirm an account made at ``/register`` by hand;
- ``users list --unconfirmed``: only the accounts still waiting for that.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import click
from sqlalchemy.ext.asyncio import AsyncSession

from ..auth.passwords import Passwords
from ..auth.registry import Registry, UserCommand, UserFilter
from ..auth.settings import AuthSettings
from . import flows


async def _confirm(
    session: AsyncSession, _p: Passwords, _c: AuthSettings, values: Mapping[str, Any]
) -> str:
    return await flows.confirm_by_admin(session, values["name"])


def register(hooks: Registry) -> None:
    """Add sign-up's command and filter to the ``users`` group."""
    hooks.user_commands.append(
        UserCommand(
            name="confirm",
            help="Confirm NAME's sign-up (and its email address) by hand.",
            params=(click.Argument(["name"]),),
            work=_confirm,
        )
    )
    hooks.user_filters.append(
        UserFilter(
            "unconfirmed",
            "Only the accounts made at /register whose address is not confirmed.",
            keep=flows.unconfirmed_among,
        )
    )
