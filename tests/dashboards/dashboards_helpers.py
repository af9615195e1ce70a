"""The committed dashboards as JSON, and what the generator knows about each target."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from memorywatch.dashboards._style import placed_panels
from memorywatch.dashboards.generate import DashboardsConfig, file_name, specs

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS_DIR = ROOT / "dashboards"
RUNBOOKS_DIR = ROOT / "runbooks"


def committed() -> dict[str, dict[str, Any]]:
    """uid -> the committed dashboard JSON."""
    out = {}
    for spec in specs(DashboardsConfig()):
        data = json.loads((DASHBOARDS_DIR / file_name(spec)).read_text(encoding="utf-8"))
        out[data["uid"]] = data
    return out


@dataclass(frozen=True)
class TargetInfo:
    uid: str
    panel_id: int
    panel_title: str
    ref_id: str
    expr: str
    empty_while_healthy: str | None


def targets(dashboards: dict[str, dict[str, Any]]) -> list[TargetInfo]:
    """Every target of every committed panel, with the generator's empty-while-healthy note."""
    notes = {
        (spec.uid, placed.id, chr(ord("A") + i)): query.empty_while_healthy
        for spec in specs(DashboardsConfig())
        for placed in placed_panels(spec)
        for i, query in enumerate(placed.panel.queries)
    }
    return [
        TargetInfo(
            uid=uid,
            panel_id=panel["id"],
            panel_title=panel["title"],
            ref_id=target["refId"],
            expr=target["expr"],
            empty_while_healthy=notes[(uid, panel["id"], target["refId"])],
        )
        for uid, data in dashboards.items()
        for panel in data["panels"]
        for target in panel.get("targets", [])
    ]
