"""Process metrics (memory, CPU, open files, start time) for every worker, not just one.

prometheus-client's own ``ProcessCollector`` reads ``/proc/self`` at scrape time: in
multiprocess mode that is only the worker that happens to answer, and a scrape
answered by the other would show other numbers under the same series. Here each
worker copies what ``ProcessCollector`` reads into gauges of its own, which
prometheus-client keeps in the shared folder with mode ``liveall``: every live
worker's values, each with a ``pid`` label, and none of a worker that stopped
(``mark_process_dead`` at shutdown). Summing memory or CPU over ``pid`` gives the
instance's. The values are refreshed by each worker every :data:`REFRESH` seconds,
by the worker answering a scrape, and by the one pushing, just before; reading
``/proc`` takes some 50 µs.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Gauge, ProcessCollector

# Seconds between a worker's refreshes: the staleness, at most, of another worker's values.
REFRESH = 5.0

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
