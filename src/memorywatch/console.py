"""The ``memorywatch`` console script: checks that the exporter extra is installed, then runs
the click command.

``pip install memorywatch`` installs the agent SDK only (redis and opentelemetry-api); the
command needs ``memorywatch[exporter]``. Without it, the script says so in one line instead of
a traceback from whichever import fails first.
"""

from __future__ import annotations

import importlib.util
import sys
from typing import Final

EXPORTER_EXTRA: Final = {
    "redis": "redis",
    "prometheus-client": "prometheus_client",
    "click": "click",
    "PyYAML": "yaml",
    "bcrypt": "bcrypt",
    "grafanalib": "grafanalib",
}
"""Distribution -> module the command imports, for every requirement of the ``exporter``
extra in pyproject.toml (hiredis, redis's optional parser, is not needed to run)."""
INSTALL: Final = "pip install 'memorywatch[exporter]'"


def missing() -> list[str]:
    """The exporter extra's distributions whose module cannot be found."""
    return sorted(
        dist for dist, module in EXPORTER_EXTRA.items() if importlib.util.find_spec(module) is None
    )


def main() -> None:
    absent = missing()
    if absent:
        print(
            f"memorywatch: the command needs the exporter extra (missing {', '.join(absent)}): "
            f"{INSTALL}",
            file=sys.stderr,
        )
        sys.exit(1)
    from memorywatch.cli import main as command

    command()
