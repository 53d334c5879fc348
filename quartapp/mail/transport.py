"""Where mail goes, from ``MAIL_URL``: SMTP (STARTTLS, implicit TLS, or plain on loopback),
one ``.eml`` file per message, or the log.

:func:`parse_url` is the whole grammar, checked at start; delivery is in
:func:`deliver` (aiosmtplib, with timeouts).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

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
