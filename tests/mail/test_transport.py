"""``MAIL_URL``'s grammar, and delivery: SMTP (plain on loopback, STARTTLS, implicit TLS,
AUTH) to a real aiosmtpd, ``file:`` and ``console:``, and what a failure says.

None of it touches a database, so it runs once.
"""

from __future__ import annotations

import logging
import stat
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid
from pathlib import Path

import pytest

from quartapp import create_app
from quartapp.mail.transport import (
    PermanentError,
    TransientError,
    Transport,
    deliver,
    mask,
    parse_url,
)
from quartapp.settings import ConfigError
from tests.conftest import make_settings
from tests.support.smtp import PASSWORD, USERNAME, Certificates, make_certificates, smtp_sink

TIMEOUT = 5.0


def a_message(to: str = "bob@example.com", body: str = "Hello Bob\n") -> EmailMessage:
    message = EmailMessage(policy=SMTP)
    message["From"] = "no-reply@example.com"
    message["To"] = to
    message["Subject"] = "A test"
    message["Date"] = format_datetime(datetime.now(UTC))
    message["Message-ID"] = make_msgid(domain="example.com")
    message.set_content(body)
    return message


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("certificates"))


@pytest.fixture
def trusted(certificates: Certificates, monkeypatch: pytest.MonkeyPatch) -> None:
    """OpenSSL's standard way to add an authority: the client's default context reads it."""
    monkeypatch.setenv("SSL_CERT_FILE", str(certificates.authority))


# parse_url: every form the settings page lists.


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "smtp://user:pass@mail.example.com:587",
            Transport("smtp", "mail.example.com", 587, "user", "pass", starttls=True),
        ),
        ("smtp://mail.example.com", Transport("smtp", "mail.example.com", 587, starttls=True)),
        ("smtps://mail.example.com:465", Transport("smtps", "mail.example.com", 465)),
        (
            "smtps://u%40x:p%3Aw@mail.example.com",
            Transport("smtps", "mail.example.com", 465, "u@x", "p:w"),
        ),
        ("smtp://127.0.0.1:2525", Transport("smtp", "127.0.0.1", 2525)),
        ("smtp://localhost:25", Transport("smtp", "localhost", 25)),
        ("smtp://[::1]:2525", Transport("smtp", "::1", 2525)),
        ("SMTP://127.0.0.2:25/", Transport("smtp", "127.0.0.2", 25)),
        ("file:instance/mail", Transport("file", path=Path("instance/mail"))),
        ("file:///var/mail/app", Transport("file", path=Path("/var/mail/app"))),
        ("console:", Transport("console")),
    ],
)
def test_parse_url_reads_every_form(url: str, expected: Transport) -> None:
    assert parse_url(url) == expected


def test_smtp_to_another_machine_always_uses_starttls() -> None:
    # A loopback-looking name that is not loopback must not get plain SMTP.
    for host in ("10.0.0.1", "localhost.example.com", "127.0.0.1.nip.io", "mail"):
        assert parse_url(f"smtp://{host}:25").starttls, host


@pytest.mark.parametrize(
    "url",
    [
        "http://mail.example.com",
        "smtp://",
        "smtp://:25",
        "smtp://mail.example.com:99999",
        "smtp://mail.example.com:port",
        "smtp://mail.example.com:25/path",
        "smtp://mail.example.com:25?tls=no",
        "file:",
        "mail.example.com:25",
        "",
    ],
)
def test_a_bad_mail_url_refuses_to_start_in_one_line(tmp_path: Path, url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        create_app(make_settings(tmp_path, MAIL_URL=url or " "))

    message = caught.value.message
    assert message.startswith("MAIL_URL ")
    assert "\n" not in message


def test_a_refused_url_never_shows_its_password(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        create_app(make_settings(tmp_path, MAIL_URL="smtp://user:s3cret@mail.example.com:25/x"))

    assert "s3cret" not in caught.value.message


def test_describe_names_where_mail_goes_without_the_password() -> None:
    described = parse_url("smtp://user:s3cret@mail.example.com:587").describe()

    assert described == "mail.example.com:587 (STARTTLS)"


def test_mask_shows_the_domain_but_not_the_person() -> None:
    assert mask("alice.smith@example.com") == "a***@example.com"
    assert mask("nonsense") == "***"


# SMTP delivery to a real server.


async def test_plain_smtp_on_loopback_delivers_the_message_whole() -> None:
    with smtp_sink() as running:
        message = a_message()
        await deliver(parse_url(f"smtp://127.0.0.1:{running.port}"), message, TIMEOUT)

        (received,) = await running.sink.wait_for(1)
    assert received.sender == "no-reply@example.com"
    assert received.recipients == ["bob@example.com"]
    assert received.message["Message-ID"] == message["Message-ID"]
    assert received.message.get_content() == "Hello Bob\n"
    assert not received.tls


async def test_a_message_not_in_ascii_arrives_intact() -> None:
    with smtp_sink() as running:
        await deliver(
            parse_url(f"smtp://127.0.0.1:{running.port}"),
            a_message(to="José <jose@example.com>", body="Olá, José — ça va?\n"),
            TIMEOUT,
        )

        (received,) = await running.sink.wait_for(1)
    assert received.message.get_content() == "Olá, José — ça va?\n"
    assert received.recipients == ["jose@example.com"]


@pytest.mark.usefixtures("trusted")
async def test_starttls_with_auth_verifies_the_certificate_and_logs_in(
    certificates: Certificates,
) -> None:
    with smtp_sink(starttls=certificates, auth=True) as running:
        transport = Transport("smtp", "127.0.0.1", running.port, USERNAME, PASSWORD, starttls=True)
        await deliver(transport, a_message(), TIMEOUT)

        (received,) = await running.sink.wait_for(1)
    assert received.tls
    assert received.authenticated


@pytest.mark.usefixtures("trusted")
async def test_implicit_tls_delivers(certificates: Certificates) -> None:
    with smtp_sink(implicit_tls=certificates) as running:
        await deliver(parse_url(f"smtps://127.0.0.1:{running.port}"), a_message(), TIMEOUT)

        (received,) = await running.sink.wait_for(1)
    assert received.message["To"] == "bob@example.com"


async def test_an_untrusted_certificate_is_refused_and_nothing_is_sent(
    certificates: Certificates,
) -> None:
    with smtp_sink(starttls=certificates) as running:
        transport = Transport("smtp", "127.0.0.1", running.port, starttls=True)
        with pytest.raises(TransientError) as caught:
            await deliver(transport, a_message(), TIMEOUT)

        assert running.sink.received == []
    assert "Cert" in str(caught.value) or "SSL" in str(caught.value)


async def test_starttls_is_required_when_the_server_does_not_offer_it() -> None:
    with smtp_sink() as running:
        transport = Transport("smtp", "127.0.0.1", running.port, starttls=True)
        with pytest.raises(TransientError):
            await deliver(transport, a_message(), TIMEOUT)

        assert running.sink.received == []


@pytest.mark.usefixtures("trusted")
async def test_a_wrong_password_is_worth_retrying(certificates: Certificates) -> None:
    # The operator fixes the password; the messages wait for it instead of being lost.
    with smtp_sink(starttls=certificates, auth=True) as running:
        transport = Transport("smtp", "127.0.0.1", running.port, USERNAME, "wrong", starttls=True)
        with pytest.raises(TransientError) as caught:
            await deliver(transport, a_message(), TIMEOUT)

    assert str(caught.value) == "SMTPAuthenticationError 535"


async def test_no_server_is_a_transient_error() -> None:
    with smtp_sink() as running:
        port = running.port
    with pytest.raises(TransientError) as caught:
        await deliver(parse_url(f"smtp://127.0.0.1:{port}"), a_message(), TIMEOUT)

    assert "bob" not in str(caught.value)


@pytest.mark.parametrize(
    ("where", "reply", "error", "text"),
    [
        ("data", "451 4.3.0 Try again later", TransientError, "SMTPDataError 451"),
        ("data", "554 5.6.0 Message refused", PermanentError, "SMTPDataError 554"),
        ("rcpt", "450 4.2.1 Mailbox busy", TransientError, "SMTPRecipientRefused 450"),
        (
            "rcpt",
            "550 5.1.1 <bob@example.com>: no such user",
            PermanentError,
            "SMTPRecipientRefused 550",
        ),
    ],
)
async def test_a_refusal_says_whether_to_retry_with_its_code_only(
    where: str, reply: str, error: type[Exception], text: str
) -> None:
    with smtp_sink() as running:
        if where == "data":
            running.sink.replies.append(reply)
        else:
            running.sink.recipient_replies.append(reply)
        with pytest.raises(error) as caught:
            await deliver(parse_url(f"smtp://127.0.0.1:{running.port}"), a_message(), TIMEOUT)

    # The server's text may quote the address: only the class and code are kept.
    assert str(caught.value) == text


# file: and console:


async def test_file_writes_one_private_eml_and_logs_its_name(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "new" / "mail"
    message = a_message()
    caplog.set_level(logging.INFO, logger="quartapp.mail")

    await deliver(parse_url(f"file:{folder}"), message, TIMEOUT)
    await deliver(parse_url(f"file:{folder}"), message, TIMEOUT)  # a repeat: same file

    (written,) = list(folder.iterdir())
    assert written.suffix == ".eml"
    assert stat.S_IMODE(written.stat().st_mode) == 0o600
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert written.read_bytes() == message.as_bytes(policy=SMTP)
    lines = [r.getMessage() for r in caplog.records if r.name == "quartapp.mail"]
    assert lines == [f"mail written to {written}"] * 2


async def test_file_refuses_a_folder_others_can_write(tmp_path: Path) -> None:
    folder = tmp_path / "shared"
    folder.mkdir()
    folder.chmod(0o777)

    with pytest.raises(TransientError):
        await deliver(parse_url(f"file:{folder}"), a_message(), TIMEOUT)

    assert list(folder.iterdir()) == []


async def test_console_logs_the_message(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="quartapp.mail")

    await deliver(parse_url("console:"), a_message(body="The link is here\n"), TIMEOUT)

    (line,) = [r.getMessage() for r in caplog.records if r.name == "quartapp.mail"]
    assert "To: bob@example.com" in line
    assert "The link is here" in line
