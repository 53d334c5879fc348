"""The sender: delivers the outbox after commit, with retries, and loses nothing.

One loop (:meth:`Sender.run`) per process that sends: each web process by default
(started and stopped with the app, through ``while_serving``), or
``quart --app quartapp mail worker`` (:mod:`.worker`). Each turn it claims one due row,
delivers it, and records the outcome, until nothing is due; then it waits for a commit
that enqueued (:data:`.outbox.WAKE`) or ``POLL`` seconds, whichever comes first.

**The claim.** A row is due when it is neither sent nor given up, its
``next_attempt_at`` has come, and no sender holds it (``claimed_until`` is NULL or
past). Claiming sets a lease (``claimed_until``, long enough for a whole delivery)
and counts the attempt, in a transaction committed *before* sending:

- PostgreSQL: ``SELECT ... FOR UPDATE SKIP LOCKED`` then ``UPDATE``, so senders in
  several processes and machines each take a different row and never wait on one
  another;
- SQLite: one conditional ``UPDATE ... RETURNING`` (SQLite has one writer, so the
  statement is the claim).

**The outcome.** Delivered: ``sent_at`` is set and the message erased. Refused for
good (5xx about this message) or out of attempts (``MAIL_MAX_ATTEMPTS``): ``failed_at``
is set and the message erased. Otherwise the next attempt waits 30 s, doubling each
time. ``last_error`` holds the error's class and SMTP code only.

**A crash** (the process killed between the claim and the record of the outcome)
leaves the row claimed; when the lease runs out another sender claims it and sends it
again. So a message is delivered at least once and, since the lease outlasts any one
delivery, at most twice; the repeat has the same ``Message-ID``, which lets a mail
client show it once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Table, and_, delete, func, or_, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from .. import signals
from . import transport
from .models import OutboxMessage
from .outbox import WAKE
from .settings import MailSettings

if TYPE_CHECKING:
    from quart import Quart

log = logging.getLogger("quartapp.mail")
OUTBOX = cast(Table, OutboxMessage.__table__)
EXTENSION = "quartapp.mail.sender"
# Seconds between looks at the outbox when nothing wakes the sender: the most a message
# written by another process (a worker's web processes, the CLI) waits.
POLL = 5.0
# The first retry waits this long, and each one after it twice as long as the last.
BACKOFF = 30.0
# A lease outlasts the longest delivery (each SMTP step bounded, and the whole
# exchange) by this much, so only a sender that died loses its claim.
LEASE_MARGIN = 60.0
# Sent and given-up rows are kept this long (for `db` inspection), then pruned.
KEEP = 7 * 24 * 3600.0


@dataclass(frozen=True, slots=True)
class Claimed:
    """A row this sender holds until ``claimed_until``: what it needs to send and log."""

    id: int
    kind: str
    recipient: str
    message: str | None
    attempts: int


def due(now: float) -> Any:
    """The SQL condition for a row a sender may claim at ``now``."""
    return and_(
        OUTBOX.c.sent_at.is_(None),
        OUTBOX.c.failed_at.is_(None),
        OUTBOX.c.next_attempt_at <= now,
        or_(OUTBOX.c.claimed_until.is_(None), OUTBOX.c.claimed_until < now),
    )


def unsent() -> Any:
    """The SQL condition for a row still to send: the outbox's depth counts these."""
    return and_(OUTBOX.c.sent_at.is_(None), OUTBOX.c.failed_at.is_(None))


def backoff(attempts: int) -> float:
    """Seconds to wait after the ``attempts``-th failed attempt: 30, 60, 120..."""
    return float(BACKOFF * 2 ** max(0, attempts - 1))


class Sender:
    """Claims due outbox rows and delivers them; see the module docstring."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        settings: MailSettings,
        *,
        postgres: bool,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if settings.transport is None:
            raise ValueError("mail is off (MAIL_URL is none): there is nothing to send with")
        self.sessionmaker = sessionmaker
        self.settings = settings
        self.transport = settings.transport
        self.postgres = postgres
        self.clock = clock
        self.lease = settings.mail_timeout * transport.STEPS + LEASE_MARGIN
        # Set by a commit that enqueued (outbox.wake_after_commit) and by stop().
        self.wake = asyncio.Event()
        # Set after each turn of run(): what a test (or a health check) can wait on.
        self.turned = asyncio.Event()
        self.stopping = False

    def stop(self) -> None:
        """Ask :meth:`run` to return after the message in hand (safe from a signal handler)."""
        self.stopping = True
        self.wake.set()

    async def run(self, *, first_wait: float = 0.0) -> None:
        """Send what is due, wait for a wake-up or ``POLL`` seconds, again, until stopped.

        An outbox that cannot be read (the database away) is logged and tried again at
        the next turn; rows are never lost, only delayed.
        """
        await self._pause(first_wait)
        while not self.stopping:
            self.wake.clear()  # before the look: a commit during it wakes the next
            try:
                await self.drain()
                await self.measure()
            except (SQLAlchemyError, OSError, TimeoutError) as error:
                first = str(error).splitlines()[0] if str(error) else type(error).__name__
                log.warning("mail: the outbox could not be read, trying again soon: %s", first)
            except Exception:
                # A bug must not end sending for the life of the process: say it, go on.
                log.exception("mail: the sender failed; trying again soon")
            self.turned.set()
            await self._pause(POLL)

    async def _pause(self, seconds: float) -> None:
        if self.stopping or seconds <= 0:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self.wake.wait()

    async def drain(self) -> int:
        """Deliver every row due now, one claim at a time; how many were tried."""
        tried = 0
        while not self.stopping:
            claimed = await self.claim()
            if claimed is None:
                break
            await self.send(claimed)
            tried += 1
        return tried

    async def claim(self) -> Claimed | None:
        """Take one due row: set its lease and count the attempt, committed; None if none."""
        now = self.clock()
        claim = (
            update(OUTBOX)
            .values(claimed_until=now + self.lease, attempts=OUTBOX.c.attempts + 1)
            .returning(
                OUTBOX.c.id,
                OUTBOX.c.kind,
                OUTBOX.c.recipient,
                OUTBOX.c.message,
                OUTBOX.c.attempts,
            )
        )
        first = select(OUTBOX.c.id).where(due(now)).order_by(OUTBOX.c.next_attempt_at, OUTBOX.c.id)
        async with self.sessionmaker() as session, session.begin():
            if self.postgres:
                # Rows another sender has locked are skipped, not waited for.
                picked = (
                    await session.execute(first.limit(1).with_for_update(skip_locked=True))
                ).scalar()
                if picked is None:
                    return None
                row = (await session.execute(claim.where(OUTBOX.c.id == picked))).one()
            else:
                # One statement: SQLite runs it alone, so no two senders take one row.
                found = (
                    await session.execute(
                        claim.where(OUTBOX.c.id == first.limit(1).scalar_subquery(), due(now))
                    )
                ).one_or_none()
                if found is None:
                    return None
                row = found
        return Claimed(row.id, row.kind, row.recipient, row.message, row.attempts)

    async def send(self, claimed: Claimed) -> bool:
        """Deliver one claimed row and record the outcome; whether it was delivered."""
        who = transport.mask(claimed.recipient)
        error: transport.DeliveryError | None = None
        if claimed.message is None:  # cannot happen through enqueue; never sent again
            error = transport.PermanentError("NoMessage")
        else:
            try:
                await transport.deliver(
                    self.transport, claimed.message, self.settings.mail_timeout
                )
            except transport.DeliveryError as failed:
                error = failed
        now = self.clock()
        if error is None:
            await self._record(
                claimed.id,
                sent_at=now,
                message=None,
                claimed_until=None,
                last_error=None,
            )
            log.info("mail %d (%s) to %s sent", claimed.id, claimed.kind, who)
            signals.send(signals.mail_sent, kind=claimed.kind, attempts=claimed.attempts)
            return True
        reason = str(error)[:255]
        if error.transient and claimed.attempts < self.settings.mail_max_attempts:
            wait = backoff(claimed.attempts)
            await self._record(
                claimed.id,
                next_attempt_at=now + wait,
                claimed_until=None,
                last_error=reason,
            )
            log.warning(
                "mail %d (%s) to %s: attempt %d of %d failed (%s); next in %d s",
                claimed.id,
                claimed.kind,
                who,
                claimed.attempts,
                self.settings.mail_max_attempts,
                reason,
                wait,
            )
            return False
        await self._record(
            claimed.id, failed_at=now, message=None, claimed_until=None, last_error=reason
        )
        log.error(
            "mail %d (%s) to %s given up after %d attempt(s): %s",
            claimed.id,
            claimed.kind,
            who,
            claimed.attempts,
            reason,
        )
        signals.send(
            signals.mail_failed, kind=claimed.kind, attempts=claimed.attempts, error=reason
        )
        return False

    async def _record(self, row_id: int, **values: Any) -> None:
        async with self.sessionmaker() as session, session.begin():
            await session.execute(update(OUTBOX).where(OUTBOX.c.id == row_id).values(**values))

    async def measure(self) -> int:
        """Count the unsent rows and tell the metrics (``mail_outbox_depth``)."""
        async with self.sessionmaker() as session:
            depth = int((await session.execute(select(func.count()).where(unsent()))).scalar_one())
        signals.send(signals.mail_outbox_depth, depth=depth)
        return depth


async def prune(session: AsyncSession, _config: Any, batch: int) -> int:
    """Delete up to ``batch`` rows sent or given up more than ``KEEP`` ago (commits)."""
    cutoff = time.time() - KEEP
    stale = (
        select(OUTBOX.c.id)
        .where(or_(OUTBOX.c.sent_at < cutoff, OUTBOX.c.failed_at < cutoff))
        .limit(batch)
        .scalar_subquery()
    )
    result = await session.execute(delete(OUTBOX).where(OUTBOX.c.id.in_(stale)))
    await session.commit()
    return int(getattr(result, "rowcount", 0) or 0)


def init_app(app: Quart, settings: MailSettings) -> None:
    """Send in this process while it serves; and prune old rows with auth's pruners."""
    from ..auth.registry import registry

    registry(app).pruners["mail_outbox"] = prune
    if settings.on and settings.mail_sender_in_web:
        app.while_serving(_serving)


async def _serving() -> AsyncGenerator[None, None]:
    """Start the sender once the database is open; stop it before it closes.

    Stopping lets the message in hand finish (its delivery is bounded), then cancels:
    no task outlives the app, and a message cut off is only sent again after its lease.
    """
    from quart import current_app

    from ..db import db
    from . import current

    app = current_app._get_current_object()  # type: ignore[attr-defined]  # LocalProxy's method
    store = db.store
    settings = current()
    sender = Sender(
        store.sessionmaker, settings, postgres=store.engine.dialect.name == "postgresql"
    )
    app.extensions[WAKE] = sender.wake
    app.extensions[EXTENSION] = sender
    # The first look waits a turn: startup stays quiet, and rows left by the last run
    # go out within seconds.
    task = asyncio.create_task(_run_in(app, sender), name="quartapp.mail.sender")
    yield
    app.extensions.pop(WAKE, None)
    app.extensions.pop(EXTENSION, None)
    await stop(sender, task)


async def _run_in(app: Quart, sender: Sender) -> None:
    # In an app context of its own: signals name the app (metrics count only then).
    async with app.app_context():
        await sender.run(first_wait=POLL)


async def stop(sender: Sender, task: asyncio.Task[None]) -> None:
    """Stop ``sender``'s ``task``: the message in hand may finish, then it is cancelled."""
    sender.stop()
    done, _ = await asyncio.wait({task}, timeout=sender.lease - LEASE_MARGIN)
    if not done:
        task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
