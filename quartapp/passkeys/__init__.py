"""Passkeys: WebAuthn credentials that sign in with no password (py_webauthn).

- ``ceremony``: options out and responses checked, with no database or request;
- ``store``: the credentials and challenges in the database;
- ``answers``: the JSON that static/passkeys.js and the endpoints exchange;
- ``views``: the account's passkey pages (``/account/passkeys``);
- ``signin``: signing in with a passkey, and confirming a login with one;
- ``overview``: its row of the account overview (how many).
- ``localhost``: in development, a link from 127.0.0.1 to ``localhost``, where
  browsers offer passkeys.


:func:`init_app` plugs it in: its blueprints, and what it adds to signing in through
auth's registry (a login method, a strong factor, its challenges to prune).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from quart import Quart
    from sqlalchemy.ext.asyncio import AsyncSession


def init_app(app: Quart) -> None:
    """Register the blueprints, and the passkey's parts of signing in with auth's registry."""
    from ..auth.registry import registry
    from . import localhost, overview, signin, store, views

    app.register_blueprint(views.bp)
    localhost.init_app(app)
    app.register_blueprint(signin.bp)
    hooks = registry(app)
    hooks.login_methods["passkey"] = "Passkey"
    hooks.strong_methods.add("passkey")
    # A user with a passkey changes the password only after a strong proof.
    hooks.strong_factors.append(signin.has_passkey)

    async def prune_challenges(session: AsyncSession, _config: Any, batch: int) -> int:
        return await store.prune(session, batch=batch)

    hooks.pruners["challenges"] = prune_challenges
    hooks.exporters["passkeys"] = store.export
    hooks.overview_rows.append(overview.row)
