"""``GET /metrics`` for the holder of the token, and the hooks that time each request."""

from __future__ import annotations

import hmac
import logging
import os
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client import multiprocess as prometheus_multiprocess
from quart import Blueprint, abort, request
from quart.typing import ResponseReturnValue
from quart.wrappers import Response

from ..web import security
from . import instance, process, settings
from .definitions import (
    HASHING_QUEUE_DEPTH,
    PROCESS,
    REGISTRY,
    REQUEST_DURATION,
    UNMATCHED,
    multiprocess_dir,
)

bp = Blueprint("metrics", __name__)
log = logging.getLogger("quartapp.metrics")


@bp.get("/metrics")
async def metrics() -> ResponseReturnValue:
    """The metrics, for a client that sends the token; 404 for anyone else."""
    token = settings.current().metrics_token
    if not token:
        abort(404)
    sent = request.headers.get("Authorization", "")
    scheme, _, credentials = sent.partition(" ")
    # compare_digest takes as long whatever the first wrong byte, and bytes are used
    # because it refuses str with non-ASCII characters.
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        credentials.strip().encode(), token.encode()
    ):
        abort(404)
    if security.over_plain_http():
        # Only a scraper with the token gets here: it is the operator's, so say why.
        log.warning(
            "refused /metrics over plain HTTP (the proxy sent X-Forwarded-Proto: http); "
            "scrape it over https://, since the token must not cross the network in clear"
        )
        abort(404)
    PROCESS.refresh()
    name = instance.of(settings.current().metrics_instance, request.scope.get("server"))
    read = process.exposed(instance.aggregated(REGISTRY, multiprocess_dir()))
    registry = instance.labelled(read, name)
    return Response(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)


# When this request's first hook ran. A context variable rather than ``g``: each request
# runs in a task of its own, and reading one costs a tenth of a context-local lookup.
_started: ContextVar[float | None] = ContextVar("quartapp_metrics_started", default=None)
# The histogram's child per (route, status class): ``labels()`` builds and locks on
# every call, and the set of pairs is small (routes x five classes).
_durations: dict[tuple[str, int], Any] = {}


async def start_timer() -> None:
    _started.set(time.perf_counter())


def observer() -> Callable[[Response], Awaitable[Response]]:
    """The after-request hook that times requests."""

    async def observe(response: Response) -> Response:
        """Time the request by route template and status class."""
        started = _started.get()
        if started is not None:
            rule = request.url_rule
            route = rule.rule if rule is not None else UNMATCHED
            key = (route, response.status_code // 100)
            child = _durations.get(key)
            if child is None:
                child = _durations[key] = REQUEST_DURATION.labels(route, f"{key[1]}xx")
            child.observe(time.perf_counter() - started)
        return response

    return observe


async def forget_this_process() -> None:
    """At shutdown, take this worker's gauge out of the live sum."""
    HASHING_QUEUE_DEPTH.set(0)
    folder = multiprocess_dir()
    if folder:
        prometheus_multiprocess.mark_process_dead(os.getpid(), folder)
