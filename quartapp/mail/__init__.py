"""Email: addresses on accounts, password reset by mail, security notifications, and
change of address, through a transactional outbox.

- ``settings``: the typed settings (``MAIL_URL``, ``MAIL_FROM``, ``BASE_URL``...);
- ``models``: ``email_addresses``, ``mail_tokens`` and ``mail_outbox`` (migration 0009);
- ``transport``: where ``MAIL_URL`` sends, and sending;
- ``message``: multipart messages from ``templates/mail/``;
- ``outbox``: writing a message in the transaction of its change;
- ``sender``: delivering the outbox after commit, with retries (in each web process,
  or in ``worker``: ``python -m quartapp.mail.worker``);

:func:`init_app` plugs it in.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from quart import Quart

    from .settings import MailSettings

EXTENSION = "quartapp.mail"
log = logging.getLogger("quartapp.mail")


def init_app(app: Quart) -> None:
    """Resolve the settings; with mail on, the pages, the sender and the notifications."""
    from . import sender
    from .settings import resolve

    settings = resolve(app.config)
    app.extensions[EXTENSION] = settings
    sender.init_app(app, settings)
    if settings.unconfigured:
        log.warning(
            "mail is off: QUARTAPP_MAIL_URL is not set, so no password reset or notification"
            " is sent; set it (docs: Email), or QUARTAPP_MAIL_URL=none to say so on purpose"
        )


def current() -> MailSettings:
    """This app's mail settings."""
    from quart import current_app

    settings: MailSettings = current_app.extensions[EXTENSION]
    return settings
