"""The exporter's own build information and process figures."""

from __future__ import annotations

import os
import platform
import resource

import redis

from memorywatch import __version__, names
from memorywatch.exporter.exposition import Families


class BuildInfoCollector:
    def families(self) -> Families:
        families = Families()
        families.gauge(
            names.EXPORTER_BUILD_INFO,
            "memorywatch exporter build information.",
            1,
            {
                names.LABEL_VERSION: __version__,
                names.LABEL_PYTHON_VERSION: platform.python_version(),
                names.LABEL_REDIS_PY_VERSION: redis.__version__,
            },
        )
        return families


class ProcessFamilies:
    """The exporter process's own CPU, memory, file descriptors and start time, under the
    names every Prometheus client library uses (prometheus_client's ProcessCollector serves
    the same six). Read per scrape with one read of ``/proc/self/stat`` and a listing of
    ``/proc/self/fd``; the descriptor limit from ``getrlimit`` (the soft limit, the one
    ``/proc/self/limits`` shows), so no file is parsed line by line at each scrape."""

    def __init__(self) -> None:
        self._ticks = float(os.sysconf("SC_CLK_TCK"))
        self._page = resource.getpagesize()
        self._boot: float | None = None
        try:
            with open("/proc/stat", "rb") as stat:
                for line in stat:
                    if line.startswith(b"btime "):
                        self._boot = float(line.split()[1])
                        break
        except OSError:
            pass  # no /proc (not Linux): no process families, as prometheus_client

    def families(self) -> Families:
        out = Families()
        if self._boot is None:
            return out
        try:
            with open("/proc/self/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
        except OSError:
            fields = []
        if fields:
            ticks = self._ticks
            out.gauge(
                names.PROCESS_VIRTUAL_MEMORY, "Virtual memory size in bytes.", int(fields[20])
            )
            out.gauge(
                names.PROCESS_RESIDENT_MEMORY,
                "Resident memory size in bytes.",
                int(fields[21]) * self._page,
            )
            out.gauge(
                names.PROCESS_START_TIME,
                "Start time of the process since unix epoch in seconds.",
                float(fields[19]) / ticks + self._boot,
            )
            out.counter(
                names.PROCESS_CPU,
                "Total user and system CPU time spent in seconds.",
                float(fields[11]) / ticks + float(fields[12]) / ticks,
            )
        try:
            open_fds = len(os.listdir("/proc/self/fd"))
        except OSError:
            return out
        out.gauge(names.PROCESS_OPEN_FDS, "Number of open file descriptors.", open_fds)
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        if soft != resource.RLIM_INFINITY:
            out.gauge(names.PROCESS_MAX_FDS, "Maximum number of open file descriptors.", soft)
        return out
