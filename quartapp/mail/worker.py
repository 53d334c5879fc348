"""``quart --app quartapp mail worker``: send the outbox in a process of its own.

For a Procfile ``worker:`` line, with ``QUARTAPP_MAIL_SENDER_IN_WEB=false`` on the web
line so the web processes only write the outbox. The ``quart`` command builds the app
from the same settings (refusing bad ones with one ``Error:`` line and exit status 1,
as every command does); this opens the database and runs the same loop as a web
process's sender (:class:`.sender.Sender`) until SIGTERM or SIGINT; then the message in
hand finishes and it exits 0. Several workers, on several machines, share the outbox
(PostgreSQL) without sending a message twice.

It waits for new rows by looking every few seconds (``sender.POLL``): a commit in a
web process cannot wake a worker.
"""

from __future__ import annotations

import asyncio
import logging
import signal

import click
from quart import Quart

from .. import settings as site
from ..db import connect
from . import sender
from . import settings as mail_settings

log = logging.getLogger("quartapp.mail")


async def run(app: Quart) -> int:
    """Send until SIGTERM or SIGINT; the exit status."""
    settings = mail_settings.of(app)
    loop = asyncio.get_running_loop()
    stopped = asyncio.Event()
    for number in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(number, stopped.set)
    if settings.transport is None:
        # Exiting would make a process manager start it again and again.
        log.warning("mail is off (QUARTAPP_MAIL_URL); the worker sends nothing until stopped")
        await stopped.wait()
        return 0
    async with app.app_context(), connect(site.of(app)) as store:
        worker = sender.Sender(
            store.sessionmaker, settings, postgres=store.engine.dialect.name == "postgresql"
        )
        log.info("mail worker: sending the outbox to %s", settings.transport.describe())
        task = asyncio.create_task(worker.run(), name="quartapp.mail.worker")
        await stopped.wait()
        await sender.stop(worker, task)
    log.info("mail worker: stopped")
    return 0


def register(app: Quart) -> None:
    """Add ``mail worker`` to the app's ``quart`` command."""
    group = click.Group("mail", help="The email outbox.")

    @group.command("worker")
    def worker_command() -> None:
        """Send the outbox until stopped (a Procfile worker: line)."""
        # This app, as ``--app`` built it: the command runs outside any app context.
        status = asyncio.run(run(app))
        if status:
            raise click.exceptions.Exit(status)

    app.cli.add_command(group)
