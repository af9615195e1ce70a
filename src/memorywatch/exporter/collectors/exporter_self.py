"""The exporter's own build information."""

from __future__ import annotations

import platform

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
