"""Email: addresses on accounts, password reset by mail, security notifications, and
change of address, through a transactional outbox.

- ``settings``: the typed settings (``MAIL_URL``, ``MAIL_FROM``, ``BASE_URL``...);
- ``models``: ``email_addresses``, ``mail_tokens`` and ``mail_outbox`` (migration 0009);
- ``transport``: where ``MAIL_URL`` sends, and sending;
- ``message``: multipart messages from ``templates/mail/``;
- ``outbox``: writing a message in the transaction of its change;
- ``sender``: delivering the outbox after commit, with retries (in each web process,
  or in ``worker``: ``quart --app quartapp mail worker``);
- ``addresses`` (each account's address), ``tokens`` (links sent by mail), ``reset``
  (password reset), ``flows`` (change of address), ``notify`` (security notifications),
  ``overview`` (the address's row of the account overview),
  ``views`` and ``forms`` (the pages), ``cli`` (what it adds to ``users``).

:func:`init_app` plugs it in.
"""

from __future__ import annotations

import functools
import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from quart import Quart

    from .settings import MailSettings

# The app's signal receivers, kept alive here (blinker holds them weakly).
RECEIVERS = "quartapp.mail.receivers"
log = logging.getLogger("quartapp.mail")


def init_app(app: Quart) -> None:
    """Resolve the settings; with mail on, the pages, the sender and the notifications."""
    from ..auth.registry import registry
    from ..web import logs
    from . import addresses, cli, notify, overview, sender, tokens, views, worker
    from . import settings as mail_settings

    settings = mail_settings.of(app)
    sender.init_app(app, settings)
    worker.register(app)
    hooks = registry(app)
    # Addresses are managed whether or not mail is sent; links end with a password.
    cli.register(hooks)
    hooks.pruners["mail_tokens"] = tokens.prune
    hooks.password_changing.append(functools.partial(notify.password_changing, settings))
    hooks.account_deleting.append(functools.partial(notify.account_deleting, settings))
    hooks.exporters["email"] = addresses.export
    if settings.unconfigured:
        log.warning(
            "mail is off: QUARTAPP_MAIL_URL is not set, so no password reset or notification"
            " is sent; set it (docs: Email), or QUARTAPP_MAIL_URL=none to say so on purpose"
        )
    if not settings.on:
        return  # no page offers a reset, and /reset_password_request is a 404
    app.register_blueprint(views.bp)
    for pattern, replacement in views.REDACTED_PATHS:
        logs.redact_paths(app, pattern, replacement)
    hooks.login_links.append(("mail.reset_request", "Forgot your password?"))
    hooks.account_links.append(("mail.email", "Your email address"))
    hooks.overview_rows.append(overview.row)
    receivers: list[object] = []
    app.extensions[RECEIVERS] = receivers
    notify.connect(receivers, settings, app)


def current() -> MailSettings:
    """This app's mail settings (:func:`quartapp.mail.settings.current`)."""
    from .settings import current as current_settings

    return current_settings()
