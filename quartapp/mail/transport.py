"""Where mail goes, from ``MAIL_URL``: SMTP (STARTTLS, implicit TLS, or plain on loopback),
one ``.eml`` file per message, or the log.

:func:`parse_url` is the whole grammar, checked at start; delivery is in
:func:`deliver` (aiosmtplib, with timeouts), which raises a :class:`TransientError`
(try again later) or a :class:`PermanentError` (the server refused this message).
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import logging
import os
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from email.policy import SMTP, default
from email.utils import getaddresses, parseaddr, parsedate_to_datetime
from pathlib import Path
from urllib.parse import unquote, urlsplit

import aiosmtplib

from .. import files

log = logging.getLogger("quartapp.mail")

LOOPBACK_NAMES = ("localhost",)


@dataclass(frozen=True, slots=True)
class Transport:
    """A parsed ``MAIL_URL``. ``kind`` is ``smtp``, ``smtps``, ``file`` or ``console``.

    For ``smtp``: ``starttls`` is required unless the host is loopback, where plain
    SMTP is allowed (a local relay, or the tests' server).
    """

    kind: str
    host: str = ""
    port: int = 0
    username: str | None = None
    password: str | None = None
    starttls: bool = False
    path: Path | None = None

    def describe(self) -> str:
        """Where mail goes, for the log: never the password."""
        if self.kind == "file":
            return f"files in {self.path}"
        if self.kind == "console":
            return "the log"
        mode = (
            "implicit TLS"
            if self.kind == "smtps"
            else "STARTTLS"
            if self.starttls
            else "plain SMTP"
        )
        return f"{self.host}:{self.port} ({mode})"


def is_loopback(host: str) -> bool:
    """Whether ``host`` is this machine, where plain SMTP crosses no network."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_url(url: str) -> Transport:
    """Parse ``MAIL_URL``; ValueError with the fix (the password is never shown)."""
    url = url.strip()
    scheme, _, rest = url.partition(":")
    scheme = scheme.lower()
    if scheme == "console":
        return Transport("console")
    if scheme == "file":
        path = rest.removeprefix("//")
        if not path:
            raise ValueError("file: needs a folder, like file:instance/mail")
        return Transport("file", path=Path(path))
    if scheme not in ("smtp", "smtps"):
        raise ValueError(
            "must start with smtp://, smtps://, file: or console: (or be none), not "
            f"{scheme + ':' if scheme else 'nothing'}"
        )
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        raise ValueError("has a port that is not a number from 1 to 65535") from None
    host = parts.hostname
    if not host:
        raise ValueError(f"needs a host, like {scheme}://mail.example.com")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError("must be scheme://user:password@host:port with nothing after the port")
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    if scheme == "smtps":
        return Transport("smtps", host, port or 465, username, password)
    port = port or 587
    # Plain SMTP would show the password, and the messages' links, to the network.
    starttls = not is_loopback(host)
    return Transport("smtp", host, port, username, password, starttls=starttls)


# aiosmtplib's timeout bounds each step (connect, EHLO, STARTTLS, AUTH, MAIL, RCPT,
# DATA); the whole exchange is bounded too, so a server that answers each step just in
# time cannot hold a sender (and its lease, see .sender) for long.
STEPS = 4


class DeliveryError(Exception):
    """A message was not delivered. ``transient``: try again later; else never again.

    ``str()`` is the error's class and the server's reply code only (``SMTPRecipientRefused
    550``): a server's text may quote the recipient, and the message body is never part
    of it, so this is what the log and ``mail_outbox.last_error`` hold.
    """

    transient = True

    def __init__(self, kind: str, code: int | None = None) -> None:
        self.kind = kind
        self.code = code
        super().__init__(f"{kind} {code}" if code is not None else kind)


class TransientError(DeliveryError):
    """Worth another try: the server is away, slow, busy (4xx), or refuses this
    configuration (a password, a certificate), which an operator can fix meanwhile."""


class PermanentError(DeliveryError):
    """Never worth another try: the server refused this message or its recipient (5xx)."""

    transient = False


def mask(address: str) -> str:
    """An address as the log shows it: ``a***@example.com`` (who, roughly, but not whom)."""
    local, at, domain = address.rpartition("@")
    if not at:
        return "***"
    return f"{local[:1]}***@{domain}"


def _envelope(raw: bytes) -> tuple[str, list[str]]:
    """The envelope sender and recipients, from the message's From and To."""
    headers = BytesHeaderParser(policy=default).parsebytes(raw)
    sender = parseaddr(str(headers.get("From", "")))[1]
    recipients = [
        address for _, address in getaddresses([str(v) for v in headers.get_all("To", [])])
    ]
    if not sender or not recipients or not all(recipients):
        raise PermanentError("MessageWithoutAddresses")
    return sender, recipients


def _as_bytes(message: bytes | str | EmailMessage) -> bytes:
    if isinstance(message, EmailMessage):
        return message.as_bytes(policy=SMTP)
    if isinstance(message, str):
        return message.encode("utf-8")
    return message


async def deliver(
    transport: Transport, message: bytes | str | EmailMessage, seconds: float
) -> None:
    """Deliver one whole message (RFC 5322) as ``transport`` says; DeliveryError if not.

    SMTP goes to the From and To of the message. Certificates are verified against the
    system's authorities (OpenSSL's ``SSL_CERT_FILE`` adds a private one); loopback
    ``smtp://`` is plain. ``file:`` writes one ``.eml`` and logs its name; ``console:``
    logs the whole message. ``seconds`` bounds each step of an SMTP exchange, and
    ``STEPS`` times it the whole. Nothing is logged here on failure: the caller (the sender)
    logs one line, with the attempt, from :class:`DeliveryError`'s text.
    """
    raw = _as_bytes(message)
    if transport.kind == "console":
        log.info("mail (console:)\n%s", raw.decode("utf-8", "replace"))
        return
    if transport.kind == "file":
        assert transport.path is not None  # parse_url sets it for file:
        try:
            name = await asyncio.to_thread(write_eml, transport.path, raw)
        except OSError as error:
            raise TransientError(type(error).__name__) from None
        log.info("mail written to %s", name)
        return
    sender, recipients = _envelope(raw)
    try:
        async with asyncio.timeout(seconds * STEPS):
            await _smtp(transport, raw, sender, recipients, seconds)
    except DeliveryError:
        raise
    except aiosmtplib.SMTPRecipientsRefused as error:
        codes = [refused.code for refused in error.recipients]
        code = codes[0] if codes else None
        raise _by_code("SMTPRecipientRefused", code) from None
    except aiosmtplib.SMTPResponseException as error:
        # Refusals of this message (its recipient, its content) are final at 5xx; the
        # rest (HELO, AUTH, the sender address) are the configuration's, and a fixed
        # configuration sends the message: retried until the attempts run out.
        if isinstance(error, aiosmtplib.SMTPRecipientRefused | aiosmtplib.SMTPDataError):
            raise _by_code(type(error).__name__, error.code) from None
        raise TransientError(type(error).__name__, error.code) from None
    except (aiosmtplib.SMTPException, OSError, TimeoutError, ssl.SSLError) as error:
        raise TransientError(type(error).__name__) from None


def _by_code(kind: str, code: int | None) -> DeliveryError:
    if code is not None and 500 <= code < 600:
        return PermanentError(kind, code)
    return TransientError(kind, code)


async def _smtp(
    transport: Transport, raw: bytes, sender: str, recipients: list[str], seconds: float
) -> None:
    implicit = transport.kind == "smtps"
    client = aiosmtplib.SMTP(
        hostname=transport.host,
        port=transport.port,
        timeout=seconds,
        use_tls=implicit,
        # Required, not opportunistic: a server that does not offer STARTTLS is refused
        # (SMTPException), so a man in the middle cannot strip it.
        start_tls=transport.starttls,
        tls_context=ssl.create_default_context() if implicit or transport.starttls else None,
    )
    async with client:
        if transport.username is not None:
            await client.login(transport.username, transport.password or "")
        options = (
            ["BODY=8BITMIME"]
            if not raw.isascii() and client.supports_extension("8bitmime")
            else []
        )
        errors, _ = await client.sendmail(sender, recipients, raw, mail_options=options)
        if errors:  # some recipients refused, others accepted: the first refusal decides
            code = next(iter(errors.values())).code
            raise _by_code("SMTPRecipientRefused", code)


def write_eml(folder: Path, raw: bytes) -> Path:
    """Write one message as ``<folder>/<date>-<id>.eml``, whole or not at all, mode 0600.

    The folder is created 0700 and must be this user's alone. The name comes from the
    message's Date and Message-ID, which the outbox fixed: a message written again
    after a crash finds its file there and leaves it (one file per message).
    """
    headers = BytesHeaderParser(policy=default).parsebytes(raw)
    try:
        date = parsedate_to_datetime(str(headers["Date"]))
        stamp = date.astimezone(UTC).strftime("%Y%m%d-%H%M%S")
    except (TypeError, ValueError):
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    message_id = str(headers.get("Message-ID") or "").encode() or raw
    digest = hashlib.sha256(message_id).hexdigest()[:12]
    name = f"{stamp}-{digest}.eml"
    files.make_private_dir(folder)
    dir_fd = files.open_private_dir(folder)
    try:
        files.write_whole(dir_fd, name, raw.decode("utf-8", "replace"), replace=False)
    finally:
        os.close(dir_fd)
    return folder / name
