"""Command-line tools on Quart's click CLI: ``quart --app quartapp users|db ...``.

- ``users``: the ``users`` group (create, set-password, delete, list, revoke-sessions,
  unlock);
- ``db``: the ``db`` group (upgrade, downgrade, current, revision, prune) and the old
  ``init-db``;
- ``running``: what they share: the app's settings, an event loop per command, and
  errors as one line and exit status 1 (settings refusals too: ``refuse``).
"""

from __future__ import annotations

from quart import Quart

from .db import db_cli, init_db_command
from .running import refuse
from .users import for_app

__all__ = ["init_app", "refuse"]


def init_app(app: Quart) -> None:
    """Add the commands to ``quart --app quartapp``."""
    app.cli.add_command(for_app(app))
    app.cli.add_command(db_cli)
    app.cli.add_command(init_db_command)
