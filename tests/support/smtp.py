"""A real SMTP server for the tests: aiosmtpd on a free 127.0.0.1 port, keeping what it gets.

:func:`smtp_sink` starts one (plain SMTP; STARTTLS or implicit TLS with a certificate
from :func:`make_certificates`; AUTH with one user) in aiosmtpd's own thread, so the
app's client and any worker process talk to it over TCP as they would to a real
relay. The :class:`Sink` records each accepted message whole and lets a test:

- script refusals: ``sink.replies`` are answered, one each, to the next DATA commands
  (``"451 4.3.0 Try again later"``), and ``sink.recipient_replies`` to the next RCPT;
- stall: with ``sink.stall`` set, DATA waits (``sink.data_started`` is set then) until
  the test sets ``sink.release``, then refuses with a 451 (the message is not taken),
  so a sender can be killed in the middle of a delivery;
- be slow: ``sink.delay`` seconds before each answer to DATA, as a loaded relay;
- wait for mail without sleeping: :meth:`Sink.wait_for`.

The certificates are made with ``cryptography`` (already a dependency of the app): a
throwaway authority and a server certificate for ``127.0.0.1`` and ``localhost`` that it
signed. A client trusts the authority through OpenSSL's ``SSL_CERT_FILE``.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.support.ports import free_port

USERNAME = "mailer"
PASSWORD = "relay password"


@dataclass(frozen=True)
class Received:
    """One message the sink accepted: the envelope and the whole message."""

    sender: str
    recipients: list[str]
    raw: bytes
    tls: bool
    authenticated: bool

    @property
    def message(self) -> EmailMessage:
        """The message parsed with the modern API (``get_body``, ``get_content``), its
        line ends as Python's (SMTP's CRLF would stay in the text of 7bit parts)."""
        raw = self.raw.replace(b"\r\n", b"\n")
        return message_from_bytes(raw, policy=default)


@dataclass
class Sink:
    """aiosmtpd's handler: keeps accepted messages, answers scripted refusals."""

    received: list[Received] = field(default_factory=list)
    replies: list[str] = field(default_factory=list)
    recipient_replies: list[str] = field(default_factory=list)
    stall: bool = False
    delay: float = 0.0
    data_started: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    # Every DATA command, accepted or not.
    attempts: int = 0
    _changed: threading.Condition = field(default_factory=threading.Condition)

    async def handle_RCPT(
        self, server: Any, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        if self.recipient_replies:
            return self.recipient_replies.pop(0)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        with self._changed:
            self.attempts += 1
            self._changed.notify_all()
        if self.stall:
            self.data_started.set()
            # Off aiosmtpd's loop, so other connections are still served meanwhile.
            await asyncio.get_running_loop().run_in_executor(None, self.release.wait, 60)
            return "451 4.4.2 Timed out"
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.replies:
            return self.replies.pop(0)
        content = envelope.original_content or envelope.content or b""
        raw = content if isinstance(content, bytes) else content.encode()
        received = Received(
            sender=str(envelope.mail_from),
            recipients=list(envelope.rcpt_tos),
            raw=raw,
            tls=session.ssl is not None,
            authenticated=bool(session.authenticated),
        )
        with self._changed:
            self.received.append(received)
            self._changed.notify_all()
        return "250 Message accepted for delivery"

    def clear(self) -> None:
        """Forget the messages accepted so far (a module's tests sharing one sink)."""
        with self._changed:
            self.received.clear()
            self.attempts = 0

    def message_ids(self) -> list[str]:
        """The Message-ID of every accepted message, in order (repeats included)."""
        return [str(r.message["Message-ID"]) for r in list(self.received)]

    async def wait_for(self, count: int, seconds: float = 30.0) -> list[Received]:
        """Wait until ``count`` messages were accepted; all accepted so far."""
        return await asyncio.to_thread(self.wait_for_blocking, count, seconds)

    def wait_for_blocking(self, count: int, seconds: float = 30.0) -> list[Received]:
        """:meth:`wait_for` for a test with no event loop of its own (a browser test)."""
        with self._changed:
            arrived = self._changed.wait_for(lambda: len(self.received) >= count, seconds)
        if not arrived:
            raise AssertionError(
                f"the SMTP sink got {len(self.received)} message(s), not {count}, "
                f"in {seconds} s ({self.attempts} DATA command(s))"
            )
        return list(self.received)

    async def wait_for_attempts(self, count: int, seconds: float = 30.0) -> None:
        """Wait until ``count`` DATA commands arrived (accepted or refused)."""

        def wait() -> bool:
            with self._changed:
                return self._changed.wait_for(lambda: self.attempts >= count, seconds)

        if not await asyncio.to_thread(wait):
            raise AssertionError(f"the SMTP sink got {self.attempts} DATA, not {count}")


@dataclass(frozen=True)
class Certificates:
    """A throwaway authority and a server certificate it signed, as PEM files."""

    authority: Path
    certificate: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        """The server's side of TLS, with the certificate for 127.0.0.1."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.certificate, self.key)
        return context


def make_certificates(folder: Path) -> Certificates:
    """Make an authority and a server certificate for ``127.0.0.1``/``localhost``."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "quartapp test authority")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    server = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True)
    certificates = Certificates(folder / "ca.pem", folder / "server.pem", folder / "server.key")
    certificates.authority.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    certificates.certificate.write_bytes(server.public_bytes(serialization.Encoding.PEM))
    certificates.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return certificates


def _authenticate(
    server: Any, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
) -> AuthResult:
    if isinstance(auth_data, LoginPassword):
        right = auth_data.login == USERNAME.encode() and auth_data.password == PASSWORD.encode()
        return AuthResult(success=right, handled=False)
    return AuthResult(success=False, handled=False)


@dataclass
class RunningSink:
    """A started sink: its handler, where it listens, and how it speaks."""

    sink: Sink
    port: int
    host: str = "127.0.0.1"


class ClosingController(Controller):
    """aiosmtpd's Controller, closing its server and every open session when it stops.

    ``Controller.stop`` stops the loop and cancels its tasks without running them, so a
    session still open then (a client that has not sent QUIT yet) kept its transport
    until the garbage collector found it, in whatever test came next, as an unraisable
    ``ResourceWarning`` (an "unclosed transport" error at that test's setup).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sessions: list[Any] = []

    def factory(self) -> Any:
        session = super().factory()  # type: ignore[no-untyped-call]  # aiosmtpd is untyped here
        self.sessions.append(session)
        return session

    def stop(self, no_assert: bool = False) -> None:
        async def close() -> None:
            if self.server is not None:
                self.server.close()
            for session in self.sessions:
                if session.transport is not None:
                    session.transport.close()
            await asyncio.sleep(0)  # the transports' own closing callbacks

        if self.loop.is_running():
            asyncio.run_coroutine_threadsafe(close(), self.loop).result(timeout=5)
        super().stop(no_assert)


@contextmanager
def smtp_sink(
    *,
    starttls: Certificates | None = None,
    implicit_tls: Certificates | None = None,
    auth: bool = False,
) -> Iterator[RunningSink]:
    """A running aiosmtpd on a free port; stopped afterwards.

    ``starttls``: STARTTLS offered and required before anything else; ``implicit_tls``:
    TLS from the first byte (``smtps``); ``auth``: AUTH PLAIN/LOGIN for ``USERNAME`` /
    ``PASSWORD``, required, and only over TLS (aiosmtpd's default).
    """
    sink = Sink()
    port = free_port()
    options: dict[str, Any] = {}
    if starttls is not None:
        options.update(tls_context=starttls.server_context(), require_starttls=True)
    if auth:
        options.update(authenticator=_authenticate, auth_required=True)
    controller = ClosingController(
        sink,
        hostname="127.0.0.1",
        port=port,
        ssl_context=implicit_tls.server_context() if implicit_tls else None,
        server_hostname="127.0.0.1",
        **options,
    )
    controller.start()
    try:
        yield RunningSink(sink, port)
    finally:
        sink.release.set()
        controller.stop()
