"""A minimal Quart app rendering a page like quartapp's home: the anchor of ``/``.

Same framework, server and kind of template (a page extending a base with a nav built
with ``url_for`` and a flash check), and nothing else: no database, no CSRF, no
security headers. It shows what quartapp's own work on an anonymous page costs.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from quart import Quart, render_template
from quart.typing import ResponseReturnValue

BENCH = Path(__file__).resolve().parent.parent

app = Quart(
    __name__,
    template_folder=str(BENCH / "templates" / "quart"),
    static_folder=str(BENCH.parent / "static"),
)
app.secret_key = secrets.token_hex(32)


@app.get("/")
async def home() -> ResponseReturnValue:
    """The landing page."""
    return await render_template("pages/home.html")


@app.get("/welcome")
async def welcome() -> ResponseReturnValue:
    """A link target of the nav."""
    return await render_template("pages/home.html")


@app.get("/hello")
async def hello() -> ResponseReturnValue:
    """A link target of the nav."""
    return await render_template("pages/home.html")


@app.get("/login")
async def login() -> ResponseReturnValue:
    """A link target of the nav."""
    return await render_template("pages/home.html")
