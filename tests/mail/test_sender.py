"""The outbox and its sender: a message written with its change, delivered after commit,
retried with backoff, given up after ``MAIL_MAX_ATTEMPTS``, and never lost to a crash.

The app's own sender (``while_serving``) delivers in the first tests, woken by the
commit. The rest drive a :class:`Sender` of their own, with a clock they move, so
that hours of backoff take no time; the app's sender is off there
(``MAIL_SENDER_IN_WEB=false``) so the two do not race. Claims, leases and retries are
SQL, so those run on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from quart import Quart

from quartapp.db import db
from quartapp.mail import current, outbox, sender
from quartapp.mail import settings as mail_settings
from quartapp.mail.sender import KEEP, Sender, backoff
from tests.app.test_metrics import TOKEN, scrape, value
from tests.conftest import BOTH_DATABASES, aquery
from tests.support.smtp import RunningSink, smtp_sink

ADDRESS = "bob@example.com"


class Clock:
    """A clock the test moves: the sender's idea of now."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def running() -> Iterator[RunningSink]:
    with smtp_sink() as started:
        yield started


@pytest.fixture
def settings(settings: dict[str, Any], running: RunningSink) -> dict[str, Any]:
    settings.update(
        MAIL_URL=f"smtp://127.0.0.1:{running.port}",
        MAIL_TIMEOUT=5,
        MAIL_MAX_ATTEMPTS=3,
        BASE_URL="https://app.example.com",
        METRICS_TOKEN=TOKEN,
        MAIL_SENDER_IN_WEB=True,  # the development default, which the mail conftest turns off
    )
    return settings


@pytest.fixture
def manual(settings: dict[str, Any]) -> dict[str, Any]:
    """No sender in the app: the test runs its own."""
    settings["MAIL_SENDER_IN_WEB"] = False
    return settings


async def enqueue(app: Quart, to: str = ADDRESS, subject: str = "A test", **context: Any) -> None:
    """One message through the outbox, committed, as a flow writes it."""
    async with app.app_context(), db.session() as session:
        await outbox.enqueue(
            session, current(), kind="test", to=to, subject=subject, template="test", **context
        )
        await session.commit()


def own_sender(app: Quart, clock: Clock) -> Sender:
    store = app.extensions["quartapp.db"]
    return Sender(
        store.sessionmaker,
        mail_settings.of(app),
        postgres=store.engine.dialect.name == "postgresql",
        clock=clock,
    )


async def rows(settings: dict[str, Any]) -> list[dict[str, Any]]:
    names = ("id", "attempts", "sent_at", "failed_at", "claimed_until", "next_attempt_at")
    found = await aquery(
        settings,
        f"SELECT {', '.join(names)}, message IS NULL, last_error FROM mail_outbox ORDER BY id",
    )
    return [dict(zip((*names, "erased", "last_error"), row, strict=True)) for row in found]


# Delivered by the app's own sender.


@BOTH_DATABASES
async def test_a_committed_message_is_delivered_with_its_headers(
    app: Quart, running: RunningSink, settings: dict[str, Any]
) -> None:
    await enqueue(app)

    (received,) = await running.sink.wait_for(1)
    message = received.message
    assert received.recipients == [ADDRESS]
    assert received.sender == "no-reply@app.example.com"
    assert message["From"] == "no-reply@app.example.com"
    assert message["To"] == ADDRESS
    assert message["Subject"] == "A test"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["Date"].datetime is not None
    assert str(message["Message-ID"]).endswith("@app.example.com>")
    assert message.get_content_type() == "multipart/alternative"
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None
    assert html is not None
    assert "reaches bob@example.com" in text.get_content()
    assert "You get this email because" in text.get_content()
    assert '<a href="https://app.example.com"' in html.get_content()


@pytest.fixture
def no_polling(monkeypatch: pytest.MonkeyPatch) -> None:
    """The sender looks at the outbox only when woken (asked before ``app``)."""
    monkeypatch.setattr(sender, "POLL", 3600.0)


async def test_a_commit_wakes_the_sender_at_once(
    no_polling: None, app: Quart, running: RunningSink
) -> None:
    await enqueue(app)

    (received,) = await running.sink.wait_for(1)
    assert received.recipients == [ADDRESS]


async def test_a_message_rolled_back_is_never_sent(app: Quart, settings: dict[str, Any]) -> None:
    async with app.app_context(), db.session() as session:
        await outbox.enqueue(
            session, current(), kind="test", to=ADDRESS, subject="A test", template="test"
        )
        await session.rollback()

    assert await rows(settings) == []


async def test_delivery_is_recorded_and_the_message_erased(
    app: Quart, running: RunningSink, settings: dict[str, Any]
) -> None:
    await enqueue(app)
    await running.sink.wait_for(1)

    # The row is marked right after the server's 250, within the sender's turn.
    turned = current_sender(app).turned
    while not (found := await rows(settings))[0]["sent_at"]:
        turned.clear()
        await turned.wait()
    (row,) = found
    assert row["attempts"] == 1
    assert row["erased"]
    assert row["failed_at"] is None
    assert row["last_error"] is None


def current_sender(app: Quart) -> Sender:
    found: Sender = app.extensions[sender.EXTENSION]
    return found


# Headers that cannot be injected.


@pytest.mark.parametrize(
    ("to", "subject"),
    [
        ("bob@example.com\r\nBcc: eve@example.com", "A test"),
        ("bob@example.com\nBcc: eve@example.com", "A test"),
        ("bob@example.com, eve@example.com", "A test"),
        ("not an address", "A test"),
        (ADDRESS, "A test\r\nBcc: eve@example.com"),
        (ADDRESS, "A test\nX-Evil: 1"),
    ],
)
async def test_a_line_break_or_a_second_address_is_refused(
    app: Quart, settings: dict[str, Any], to: str, subject: str
) -> None:
    with pytest.raises(ValueError, match=r"line|address"):
        await enqueue(app, to=to, subject=subject)

    assert await rows(settings) == []


# Retries, backoff and giving up, with a clock the test moves.


@BOTH_DATABASES
async def test_refusals_are_retried_with_doubling_waits_until_accepted(
    manual: dict[str, Any], app: Quart, running: RunningSink
) -> None:
    running.sink.replies += ["451 4.3.0 Try again later", "421 4.7.0 Busy"]
    await enqueue(app)
    clock = Clock((await rows(manual))[0]["next_attempt_at"])
    mail = own_sender(app, clock)

    assert await mail.drain() == 1
    first = (await rows(manual))[0]
    assert first["next_attempt_at"] == clock.now + backoff(1) == clock.now + 30
    assert first["last_error"] == "SMTPDataError 451"
    assert first["claimed_until"] is None
    assert await mail.drain() == 0  # not due yet

    clock.now += 30
    assert await mail.drain() == 1
    assert (await rows(manual))[0]["next_attempt_at"] == clock.now + 60

    clock.now += 60
    assert await mail.drain() == 1
    (_received,) = await running.sink.wait_for(1)
    (row,) = await rows(manual)
    assert row["sent_at"] == clock.now
    assert row["attempts"] == 3
    assert row["erased"]
    assert running.sink.attempts == 3


@BOTH_DATABASES
async def test_a_message_is_given_up_after_max_attempts(
    manual: dict[str, Any], app: Quart, running: RunningSink
) -> None:
    running.sink.replies += ["451 4.3.0 Try again later"] * 3
    await enqueue(app)
    clock = Clock((await rows(manual))[0]["next_attempt_at"])
    mail = own_sender(app, clock)

    for attempt in range(1, 4):
        assert await mail.drain() == 1, attempt
        clock.now += backoff(attempt)

    (row,) = await rows(manual)
    assert row["attempts"] == 3
    assert row["failed_at"] is not None
    assert row["sent_at"] is None
    assert row["erased"]
    assert row["last_error"] == "SMTPDataError 451"
    clock.now += 3600
    assert await mail.drain() == 0
    assert running.sink.received == []


async def test_a_recipient_refused_for_good_is_given_up_at_once(
    manual: dict[str, Any], app: Quart, running: RunningSink
) -> None:
    running.sink.recipient_replies.append("550 5.1.1 <bob@example.com>: no such user")
    await enqueue(app)
    mail = own_sender(app, Clock((await rows(manual))[0]["next_attempt_at"]))

    assert await mail.drain() == 1

    (row,) = await rows(manual)
    assert row["attempts"] == 1
    assert row["failed_at"] is not None
    assert row["last_error"] == "SMTPRecipientRefused 550"


async def test_a_failure_is_logged_in_one_line_without_the_address_or_body(
    manual: dict[str, Any], app: Quart, running: RunningSink, caplog: pytest.LogCaptureFixture
) -> None:
    running.sink.replies.append("451 4.3.0 <bob@example.com> try later")
    await enqueue(app)
    mail = own_sender(app, Clock((await rows(manual))[0]["next_attempt_at"]))

    await mail.drain()

    (line,) = [r.getMessage() for r in caplog.records if r.name == "quartapp.mail"]
    assert line == (
        "mail 1 (test) to b***@example.com: attempt 1 of 3 failed (SMTPDataError 451);"
        " next in 30 s"
    )


# A crash between the claim and the send.


@BOTH_DATABASES
async def test_a_claim_abandoned_by_a_crash_is_sent_once_the_lease_ends(
    manual: dict[str, Any], app: Quart, running: RunningSink
) -> None:
    await enqueue(app)
    clock = Clock((await rows(manual))[0]["next_attempt_at"])
    crashed = own_sender(app, clock)
    claimed = await crashed.claim()
    assert claimed is not None  # ... and the process dies here, before sending
    other = own_sender(app, clock)

    assert await other.drain() == 0  # held by the lease
    clock.now += crashed.lease + 1
    assert await other.drain() == 1

    (_received,) = await running.sink.wait_for(1)
    (row,) = await rows(manual)
    assert row["attempts"] == 2
    assert row["sent_at"] is not None


@BOTH_DATABASES
async def test_two_senders_never_claim_the_same_row(manual: dict[str, Any], app: Quart) -> None:
    await enqueue(app, to="a@example.com")
    await enqueue(app, to="b@example.com")
    clock = Clock(max(row["next_attempt_at"] for row in await rows(manual)))
    first, second, third = (own_sender(app, clock) for _ in range(3))

    one = await first.claim()
    two = await second.claim()

    assert one is not None
    assert two is not None
    assert {one.recipient, two.recipient} == {"a@example.com", "b@example.com"}
    assert await third.claim() is None


# Metrics and pruning.


@BOTH_DATABASES
async def test_metrics_count_sent_given_up_and_the_depth(
    manual: dict[str, Any], app: Quart, running: RunningSink
) -> None:
    client = app.test_client()
    before = await scrape(client)
    running.sink.recipient_replies.append("550 5.1.1 no such user")
    for to in ("a@example.com", "b@example.com", "c@example.com"):
        await enqueue(app, to=to)
    clock = Clock(max(row["next_attempt_at"] for row in await rows(manual)))
    mail = own_sender(app, clock)
    running.sink.replies.append("451 4.3.0 Try again later")

    async with app.app_context():  # signals name the app, as in the sender's task
        await mail.drain()
        assert await mail.measure() == 1

    after = await scrape(client)
    assert (
        value(after, "quartapp_mail_sent_total") - value(before, "quartapp_mail_sent_total") == 1
    )
    assert (
        value(after, "quartapp_mail_failed_total") - value(before, "quartapp_mail_failed_total")
        == 1
    )
    assert value(after, "quartapp_mail_outbox_depth") == 1


@BOTH_DATABASES
async def test_the_pruner_deletes_old_sent_and_failed_rows_only(
    manual: dict[str, Any], app: Quart
) -> None:
    for _ in range(4):
        await enqueue(app)
    now = (await rows(manual))[0]["next_attempt_at"]
    old = now - KEEP - 60
    await aquery(manual, f"UPDATE mail_outbox SET sent_at = {old} WHERE id = 1")
    await aquery(manual, f"UPDATE mail_outbox SET failed_at = {old} WHERE id = 2")
    await aquery(manual, f"UPDATE mail_outbox SET sent_at = {now} WHERE id = 3")

    async with app.app_context(), db.session() as session:
        assert await sender.prune(session, app.config, 500) == 2

    assert [row["id"] for row in await rows(manual)] == [3, 4]


async def test_the_sender_stops_with_the_app_and_leaves_no_task(
    settings: dict[str, Any], tmp_path: Path
) -> None:
    from quartapp import create_app

    app = create_app(settings)
    async with app.test_app():
        task_sender = current_sender(app)
        assert not task_sender.stopping

    assert task_sender.stopping
    assert sender.EXTENSION not in app.extensions
