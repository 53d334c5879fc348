"""``python -m quartapp.mail.worker``: send the outbox in a process of its own.

For a Procfile ``worker:`` line, with ``QUARTAPP_MAIL_SENDER_IN_WEB=false`` on the web
line so the web processes only write the outbox. It builds the app from the same
settings (refusing bad ones with the app's one ``quartapp: refusing to start:`` line
and exit status 1), opens the database, and runs the same loop as a web process's
sender (:class:`.sender.Sender`) until SIGTERM or SIGINT; then the message in hand
finishes and it exits 0. Several workers, on several machines, share the outbox
(PostgreSQL) without sending a message twice.

It waits for new rows by looking every few seconds (``sender.POLL``): a commit in a
web process cannot wake a worker.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import signal
import sys

from ..db import connect
from ..settings import ConfigError
from . import EXTENSION, sender
from .settings import MailSettings

log = logging.getLogger("quartapp.mail")


async def run() -> int:
    """Build the app, then send until SIGTERM or SIGINT; the exit status."""
    # The app factory through importlib: this entry point builds the app as
    # quartapp.serve does, and a static import of the package's root would draw an
    # arrow from a feature up to the entry points (.importlinter's layers).
    create_app = importlib.import_module("quartapp").create_app
    try:
        app = create_app()
    except ConfigError as error:
        print(f"quartapp: refusing to start: {error.message}", file=sys.stderr)
        return 1
    settings: MailSettings = app.extensions[EXTENSION]
    loop = asyncio.get_running_loop()
    stopped = asyncio.Event()
    for number in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(number, stopped.set)
    if settings.transport is None:
        # Exiting would make a process manager start it again and again.
        log.warning("mail is off (QUARTAPP_MAIL_URL); the worker sends nothing until stopped")
        await stopped.wait()
        return 0
    async with app.app_context(), connect(app.config) as store:
        worker = sender.Sender(
            store.sessionmaker, settings, postgres=store.engine.dialect.name == "postgresql"
        )
        log.info("mail worker: sending the outbox to %s", settings.transport.describe())
        task = asyncio.create_task(worker.run(), name="quartapp.mail.worker")
        await stopped.wait()
        await sender.stop(worker, task)
    log.info("mail worker: stopped")
    return 0


def main() -> int:
    """The command's entry point: its exit status."""
    return asyncio.run(run())


if __name__ == "__main__":
    raise SystemExit(main())
