"""A logged-in user's own pages: the ``account`` blueprint under ``/account``.

- ``views``: change the password; list, end and trust sessions (logins) and devices;
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
    """Register the ``account`` blueprint."""
    from . import leaving, views

    del leaving  # imported for its routes on views.bp

    app.register_blueprint(views.bp)
