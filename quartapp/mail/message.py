"""Messages: multipart text and HTML from templates, with headers that can't be injected.

Each message is ``templates/mail/<name>.txt`` and ``.html``, rendered with the same
context; the subject is passed in (one line, checked). Headers are set through
:class:`email.message.EmailMessage` with the ``SMTP`` policy, which refuses a value
with a line break, so nothing a user typed (a user name, a browser's User-Agent) can
add a header. ``Date`` and ``Message-ID`` are fixed when the message is written to
the outbox, so a repeat after a crash is the same message; ``Auto-Submitted:
auto-generated`` (RFC 3834) keeps auto-responders from answering.
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, getaddresses, make_msgid
from typing import Any
from urllib.parse import urlsplit

from quart import render_template

from .settings import MailSettings


async def build(
    settings: MailSettings, *, to: str, subject: str, template: str, **context: Any
) -> EmailMessage:
    """Render ``templates/mail/<template>.txt`` and ``.html`` into one message to ``to``."""
    if "\r" in subject or "\n" in subject:
        raise ValueError("a subject is one line")
    check_recipient(to)
    context.setdefault("base_url", settings.base_url)
    context.setdefault("to", to)
    text = await render_template(f"mail/{template}.txt", **context)
    html = await render_template(f"mail/{template}.html", **context)
    message = EmailMessage(policy=SMTP)
    message["From"] = settings.sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = format_datetime(datetime.now(UTC))
    message["Message-ID"] = make_msgid(domain=urlsplit(settings.base_url).hostname)
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    return message


def check_recipient(to: str) -> None:
    """Refuse a ``to`` that is not exactly one address on one line (ValueError).

    The header itself refuses a line break; this also refuses a list (``a@x, b@y``),
    which would send one message, and its link, to several people.
    """
    if "\r" in to or "\n" in to:
        raise ValueError("a recipient is one line")
    found = getaddresses([to])
    if len(found) != 1 or "@" not in found[0][1]:
        raise ValueError("a message goes to exactly one address")
