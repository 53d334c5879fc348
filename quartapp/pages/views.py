"""The public pages and the protected greeting: the ``pages`` blueprint (``/``,
``/welcome`` and ``/hello``)."""

from __future__ import annotations

from quart import Blueprint, render_template
from quart.typing import ResponseReturnValue

from ..auth.current import login_required

bp = Blueprint("pages", __name__)


@bp.get("/")
async def home() -> ResponseReturnValue:
    """The landing page."""
    return await render_template("pages/home.html")


@bp.get("/welcome")
async def welcome() -> ResponseReturnValue:
    """A public page, as in the tutorial."""
    return await render_template("pages/welcome.html")


@bp.get("/hello")
@login_required
async def hello() -> ResponseReturnValue:
    """Greets the logged-in user by name."""
    return await render_template("pages/hello.html")
