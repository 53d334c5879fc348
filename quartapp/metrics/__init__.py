"""``/metrics``: counts and timings in Prometheus's text format, through prometheus-client.

Off unless ``METRICS_TOKEN`` is set; then ``GET /metrics`` needs ``Authorization:
Bearer <token>``, and answers 404 without it, as it does when off, so a scanner learns
nothing. The hooks that time requests are installed only when it is on. It is never
served over plain HTTP: in production, a request the trusted proxy reports as plain
HTTP gets the 308 to HTTPS every page gets (:mod:`.web.security`), or, with
``HTTPS_REDIRECT`` off, a 404 even with the right token, and a warning in the log.

**Several workers.** hypercorn runs ``--workers`` separate processes, each answering
some of the scrapes. prometheus-client's multiprocess mode makes every process write
its values to files in one folder, ``PROMETHEUS_MULTIPROC_DIR``, and sums them all at
each scrape, so any worker answers for all of them. ``python -m quartapp.serve`` (the
Procfile's web line and ``make run``) creates a fresh folder per run before the
workers start and removes it afterwards. Without it (plain ``hypercorn``), each
process counts alone: right for one worker, and a warning at startup otherwise.

**What is counted.** Account events come from :mod:`.signals`; requests are timed by
route template (``/account/sessions``, never a raw path, so the label set stays small)
and status class (``2xx``); database errors and a full hashing queue from the 503
handler (:mod:`.web.errors`). The hashing queue's depth is a per-process gauge, set whenever
the line changes (a signal from the hashing service), summed over the live workers. Mail
comes from the sender's signals: messages sent and given up, and the outbox's depth,
which every sender counts in the one shared table (the latest count is shown). Second
factors and passkeys are counted by method or ceremony and result, and every worker's
process figures are shown with its ``pid`` (:mod:`.process`).

**Several instances.** Every series carries an ``instance`` label (:mod:`.instance`):
``METRICS_INSTANCE`` or Heroku's ``DYNO``, else the address the scrape reached. Where
Prometheus reaches each instance, it scrapes ``/metrics``; where only a router is
reachable, one worker per instance pushes to a Pushgateway (:mod:`.push`).

Where things are: :mod:`.definitions` (every series), :mod:`.view` (``/metrics`` and
the request timer), :mod:`.receivers` (the signals), :mod:`.process`, :mod:`.instance`,
:mod:`.push` and :mod:`.looplag`; :func:`init_app` below plugs them in.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
from collections.abc import AsyncGenerator

from prometheus_client import CollectorRegistry
from quart import Quart, current_app

from . import instance, looplag, process, receivers, settings
from .definitions import MULTIPROCESS_DIR, PROCESS, REGISTRY, multiprocess_dir
from .process import REFRESH
from .push import Pusher
from .view import bp, forget_this_process, observer, start_timer

__all__ = ["init_app", "receivers"]
log = logging.getLogger("quartapp.metrics")


async def _refreshing() -> None:
    """Keep this worker's process figures current for whichever worker is scraped."""
    while True:
        PROCESS.refresh()
        await asyncio.sleep(REFRESH)


async def _serving() -> AsyncGenerator[None, None]:
    """While serving: refresh the process figures, and push if ``METRICS_PUSH_URL`` is set."""
    config = settings.of(current_app)
    folder = multiprocess_dir()
    tasks = [asyncio.create_task(_refreshing())]
    pusher = None
    if config.metrics_push_url:

        def read() -> CollectorRegistry:
            PROCESS.refresh()
            return process.exposed(instance.aggregated(REGISTRY, folder))

        # No request here to name the address: the host name stands in.
        name = instance.of(config.metrics_instance)
        pusher = Pusher(config.metrics_push_url, name, read, folder)
        tasks.append(asyncio.create_task(pusher.run(config.metrics_push_interval)))
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if pusher is not None:
            await pusher.stop()


def init_app(app: Quart) -> None:
    """Serve ``/metrics`` (404 while off) and, when on, time every request."""
    app.register_blueprint(bp)
    if not settings.of(app).enabled:
        return
    # First of all the hooks, so the time includes the host check and the others.
    app.before_request_funcs.setdefault(None, []).insert(0, start_timer)
    # Quart runs after-request hooks last-registered first: at the front, this runs last.
    app.after_request_funcs.setdefault(None, []).insert(0, observer())
    app.while_serving(_serving)
    app.after_serving(forget_this_process)
    looplag.init_app(app)
    if not multiprocess_dir() and multiprocessing.parent_process() is not None:
        log.warning(
            "METRICS_TOKEN is set but %s is not: /metrics counts only the worker that "
            "answers; serve with `python -m quartapp.serve` (as the Procfile does) for "
            "totals over every worker",
            MULTIPROCESS_DIR,
        )
