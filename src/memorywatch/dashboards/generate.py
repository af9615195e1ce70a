"""Everything `memorywatch dashboards generate` writes, as one pure function of its config."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from memorywatch import names
from memorywatch.alerts.model import DEFAULT_RUNBOOK_BASE_URL
from memorywatch.dashboards import locks_tools, overview, redis_memory
from memorywatch.dashboards._style import Context, DashboardSpec, build_dashboard, placed_panels
from memorywatch.scope import Scope
from memorywatch.thresholds import Thresholds

GENERATE_COMMAND: Final = "memorywatch dashboards generate"
DEFAULT_OUT_DIR: Final = Path("dashboards")
VARIABLE_METRIC: Final = names.REDIS_UP
"""The series the job and instance variables list: every memorywatch target has it."""

SPECS: Final[tuple[Callable[[Context], DashboardSpec], ...]] = (
    overview.spec,
    locks_tools.spec,
    redis_memory.spec,
)


@dataclass(frozen=True)
class DashboardsConfig:
    thresholds: Thresholds = field(default_factory=Thresholds)
    runbook_base_url: str = DEFAULT_RUNBOOK_BASE_URL
    out_dir: Path = DEFAULT_OUT_DIR
    scope: Scope = field(default_factory=Scope)

    @property
    def context(self) -> Context:
        return Context(
            thresholds=self.thresholds, runbook_base_url=self.runbook_base_url, scope=self.scope
        )


def specs(config: DashboardsConfig) -> tuple[DashboardSpec, ...]:
    return tuple(build(config.context) for build in SPECS)


@functools.lru_cache(maxsize=4)
def alert_panels(thresholds: Thresholds) -> Mapping[tuple[str, str], int]:
    """(dashboard uid, threshold name) -> id of the first panel, in reading order, that
    watches that threshold: where an alert's dashboard_url opens (``?viewPanel=``)."""
    found: dict[tuple[str, str], int] = {}
    for spec in specs(DashboardsConfig(thresholds=thresholds)):
        for placed in placed_panels(spec):
            for name in placed.panel.watch:
                found.setdefault((spec.uid, name), placed.id)
    return found


def file_name(spec: DashboardSpec) -> str:
    return f"{spec.uid}.json"


def dump(data: dict[str, Any]) -> str:
    """Byte-deterministic JSON: sorted keys, two-space indent, a final newline."""
    return json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def render_all(config: DashboardsConfig) -> dict[Path, str]:
    """Path -> content of every dashboard file."""
    ctx = config.context
    return {
        config.out_dir / file_name(spec): dump(build_dashboard(ctx, spec, VARIABLE_METRIC))
        for spec in specs(config)
    }


def generate(config: DashboardsConfig) -> list[Path]:
    """Write the files that differ from what is on disk; return the paths written."""
    written = []
    for path, content in render_all(config).items():
        if path.is_file() and path.read_text(encoding="utf-8") == content:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
        written.append(path)
    return written


def check(config: DashboardsConfig) -> list[Path]:
    """Paths whose content on disk differs from what `generate` would write."""
    return [
        path
        for path, content in render_all(config).items()
        if not path.is_file() or path.read_text(encoding="utf-8") != content
    ]
