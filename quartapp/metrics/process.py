"""Process metrics (memory, CPU, open files, start time) for every worker, not just one.

prometheus-client's own ``ProcessCollector`` reads ``/proc/self`` at scrape time: in
multiprocess mode that is only the worker that happens to answer, and a scrape
answered by the other would show other numbers under the same series. Here each
worker copies what ``ProcessCollector`` reads into gauges of its own, which
prometheus-client keeps in the shared folder with mode ``liveall``: every live
worker's values, each with a ``pid`` label, and none of a worker that stopped
(``mark_process_dead`` at shutdown). Summing memory or CPU over ``pid`` gives the
instance's. CPU time, kept as a gauge (a worker's own figure is set, not added to),
is read out as the counter it is (:func:`exposed`): a Pushgateway refuses a gauge named
``_total``, and ``rate()`` reads it as Prometheus's own. The values are refreshed by
each worker every :data:`REFRESH` seconds, by the worker answering a scrape, and by
the one pushing, just before; reading ``/proc`` takes some 0.3 ms.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Gauge, ProcessCollector
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

# Seconds between a worker's refreshes: the staleness, at most, of another worker's values.
REFRESH = 5.0

CPU = "process_cpu_seconds_total"

# The names ProcessCollector gives its samples, and what each means.
GAUGES = {
    "process_resident_memory_bytes": "Resident memory size in bytes, per worker.",
    "process_virtual_memory_bytes": "Virtual memory size in bytes, per worker.",
    "process_cpu_seconds_total": "Total user and system CPU time spent in seconds, per worker.",
    "process_open_fds": "Number of open file descriptors, per worker.",
    "process_max_fds": "Maximum number of open file descriptors, per worker.",
    "process_start_time_seconds": "Start time of the worker since the Unix epoch in seconds.",
}


class ProcessGauges:
    """This process's figures as gauges in ``registry``, one series per live worker."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.gauges = {
            name: Gauge(name, meaning, registry=registry, multiprocess_mode="liveall")
            for name, meaning in GAUGES.items()
        }
        # Not registered anywhere: only read from, by refresh().
        self.reader = ProcessCollector(registry=None)

    def refresh(self) -> None:
        """Copy this process's current figures into the gauges.

        Where ``/proc`` is missing (not Linux) ProcessCollector reads nothing, and the
        gauges stay at 0.
        """
        for family in self.reader.collect():
            for sample in family.samples:
                gauge = self.gauges.get(sample.name)
                if gauge is not None:
                    gauge.set(sample.value)


class CpuAsCounter(Collector):
    """``source``'s metrics, with the CPU time gauge given the counter type it has."""

    def __init__(self, source: CollectorRegistry) -> None:
        self.source = source

    def collect(self) -> Iterator[Metric]:
        """The metrics as they are, the CPU time retyped (its samples keep their name)."""
        for metric in self.source.collect():
            if metric.name == CPU and metric.type == "gauge":
                counter = Metric(CPU.removesuffix("_total"), metric.documentation, "counter")
                counter.samples = metric.samples
                yield counter
            else:
                yield metric


def exposed(source: CollectorRegistry) -> CollectorRegistry:
    """A registry showing ``source`` with the CPU time as a counter."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(CpuAsCounter(source))
    return registry
