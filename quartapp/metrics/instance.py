"""The ``instance`` label every exposed series carries, and the registries it is put on.

Behind a router, Prometheus cannot tell which instance (Heroku dyno, container) it
scraped: the target is the router's address every time, so two dynos' counts read as
one series that jumps between them. Each series therefore names its instance itself:
``METRICS_INSTANCE``, which Heroku's ``DYNO`` sets (``web.1``), or else the address and
port the scrape reached (for the push, which has no request, the host name). The label
is added when the metrics are read, not stored with each value: the workers' files and
the hot path stay as they were, and the name is decided once per read.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client import multiprocess as prometheus_multiprocess
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

LABEL = "instance"


class Labelled(Collector):
    """Every metric of ``sources``, each sample with ``instance`` added."""

    def __init__(self, sources: Iterable[Collector | CollectorRegistry], instance: str) -> None:
        self.sources = tuple(sources)
        self.instance = instance

    def collect(self) -> Iterator[Metric]:
        """Copies of the sources' metrics: the samples are shared tuples, so not changed."""
        for source in self.sources:
            for metric in source.collect():
                labelled = Metric(metric.name, metric.documentation, metric.type, metric.unit)
                labelled.samples = [
                    sample._replace(labels={**sample.labels, LABEL: self.instance})
                    for sample in metric.samples
                ]
                yield labelled


def aggregated(own: CollectorRegistry, folder: str | None) -> CollectorRegistry:
    """Every worker's values, summed (``folder``: multiprocess mode), else this process's."""
    if not folder:
        return own
    # A fresh registry per read, reading every process's files, as prometheus-client's
    # multiprocess mode prescribes.
    registry = CollectorRegistry()
    prometheus_multiprocess.MultiProcessCollector(registry, path=folder)
    return registry


def labelled(source: CollectorRegistry, instance: str) -> CollectorRegistry:
    """A registry exposing ``source`` with every series labelled ``instance``."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(Labelled([source], instance))
    return registry


def address(server: Any) -> str:
    """``host:port`` of an ASGI scope's ``server``; the host name without one (a socket)."""
    if isinstance(server, (tuple, list)) and len(server) == 2 and server[1] is not None:
        host, port = server
        host = f"[{host}]" if ":" in str(host) else str(host)
        return f"{host}:{port}"
    return socket.gethostname()


def of(configured: str | None, server: Any = None) -> str:
    """The instance label: the configured one, else the address a request reached."""
    return configured or address(server)
