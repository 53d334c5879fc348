"""Sign-up: ``/register``, the confirmation of the new account's address, and the prune
of accounts never confirmed.

- ``settings``: ``REGISTRATION_OPEN`` and the limits;
- ``models``: ``registrations`` (migration 0010);
- ``flows``: registering, resending, confirming (the pages and the CLI);
- ``views`` and ``forms``: the pages; ``cli``: ``users confirm`` and
  ``users list --unconfirmed``.

It sends its mail through :mod:`quartapp.mail` (a lower layer) and plugs into signing in
through auth's registry: a login gate holds unconfirmed accounts on
``/confirm_email``, a pruner deletes them, and the login page links to ``/register``.
:func:`init_app` plugs it in.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from quart import Quart
    from sqlalchemy.ext.asyncio import AsyncSession

log = logging.getLogger("quartapp.signup")


def init_app(app: Quart) -> None:
    """The gate, the pruner, the CLI and the pages; ``/register`` only while open."""
    from ..auth.registry import LoginGate, registry
    from ..mail import settings as mail_settings
    from ..web import logs
    from . import cli, flows, views
    from . import settings as signup_settings

    settings = signup_settings.of(app)
    mail = mail_settings.of(app)
    hooks = registry(app)
    cli.register(hooks)

    async def prune(dbs: AsyncSession, _config: Any, batch: int) -> int:
        return await flows.prune(dbs, settings, batch)

    hooks.pruners["registrations"] = prune
    hooks.login_gates.append(LoginGate(flows.unconfirmed, "signup.confirm_needed"))
    # The confirmation pages stay while registration is closed: accounts made while it
    # was open still confirm from their links.
    app.register_blueprint(views.bp)
    for pattern, replacement in views.REDACTED_PATHS:
        logs.redact_paths(app, pattern, replacement)
    if settings.registration_open and not mail.on:
        log.warning(
            "REGISTRATION_OPEN is set but mail is off (MAIL_URL), so /register stays"
            " closed: a new account is confirmed from a link sent to its address"
        )
    elif settings.registration_open:
        hooks.login_links.append(("signup.register", "New user? Register"))
