"""The exporter's own build information."""

from __future__ import annotations

import platform

import redis
from prometheus_client.core import Metric

from memorywatch import __version__, names
from memorywatch.exporter.exposition import Families


class BuildInfoCollector:
    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> list[Metric]:
        families = Families()
        families.gauge(
            names.EXPORTER_BUILD_INFO,
            "memorywatch exporter build information.",
            1,
            {
                "version": __version__,
                "python_version": platform.python_version(),
                "redis_py_version": redis.__version__,
            },
        )
        return families.collect()
