"""A logged-in user's own pages: the ``account`` blueprint under ``/account``.

- ``views``: the overview (``/account``); change the password; list, end and trust
  sessions (logins) and devices;
- ``overview``: the overview's rows that are the account's own (password, sessions,
  trusted devices), registered with auth's ``overview_rows`` like every feature's;
- ``login_list``: the sessions page's queries (live logins, their public ids);
- ``leaving``: download one's data, close one's account; ``export``: what the download
  holds;
- ``forms``: their forms.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from quart import Quart


def init_app(app: Quart) -> None:
    """Register the ``account`` blueprint, and its rows of the overview."""
    from ..auth.registry import registry
    from . import leaving, overview, views

    del leaving  # imported for its routes on views.bp

    app.register_blueprint(views.bp)
    registry(app).overview_rows.extend(
        [overview.password_row, overview.sessions_row, overview.devices_row]
    )
