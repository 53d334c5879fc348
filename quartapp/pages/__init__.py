"""The tutorials' own pages: the home page, the welcome page and the protected greeting.

- ``views``: the ``pages`` blueprint (``/``, ``/welcome``, ``/hello``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from quart import Quart


def init_app(app: Quart) -> None:
    """Register the ``pages`` blueprint."""
    from . import views

    app.register_blueprint(views.bp)
