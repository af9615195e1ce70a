"""House style for memorywatch dashboards: one way to select, threshold, link and lay out.

A dashboard module describes its panels as `Panel` values (what to show, its unit, which
thresholds of the table it watches) in rows; `build_dashboard` turns them into grafanalib
objects with fixed ids and grid positions, thresholds from the table and links to the runbooks
of the alerts a panel watches. Every query selects on the `$job` and `$instance` variables and
reads the `$datasource` variable; rates use `$__rate_interval`, totals over the dashboard's
time range use `$__range`.

grafanalib 0.7.1 writes some panels in Grafana 6 shapes (the bar gauge's
``options.fieldOptions``, the gauge's reducer inside ``fieldConfig``); `_modernize` writes the
shapes current Grafana reads, so nothing depends on a migration guessing right.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import grafanalib.core as g
from grafanalib._gen import DashboardEncoder

from memorywatch.scope import CLUSTER_VAR, Scope
from memorywatch.thresholds import Threshold, Thresholds

TAG: Final = "memorywatch"
DATASOURCE_VAR: Final = "datasource"
DATASOURCE: Final[Mapping[str, str]] = {"type": "prometheus", "uid": "${" + DATASOURCE_VAR + "}"}
JOB_VAR: Final = "job"
INSTANCE_VAR: Final = "instance"
RATE_INTERVAL: Final = "$__rate_interval"
RANGE: Final = "$__range"
GRID_WIDTH: Final = 24

SEVERITY_COLOR: Final[Mapping[str, str]] = {
    "critical": "red",
    "warning": "orange",
    "info": "blue",
}
OK_COLOR: Final = "green"
COUNT_EPSILON: Final = 0.001
"""Grafana colours a step from its value up (>=); count alerts fire above theirs (> 0), and
``increase()`` extrapolates to fractions, so a count step starts just above the value."""

PanelKind = Literal["timeseries", "stat", "gauge", "bargauge", "table"]
PANEL_KINDS: Final[tuple[PanelKind, ...]] = (
    "timeseries",
    "stat",
    "gauge",
    "bargauge",
    "table",
)
"""The panel types current Grafana renders natively (no Angular Graph or SingleStat)."""


# Selectors -------------------------------------------------------------------------------------


def sel(metric: str, *matchers: str) -> str:
    """``metric{job=~"$job",instance=~"$instance",...}``: every query is scoped by both."""
    inner = ",".join(
        (f'job=~"${JOB_VAR}"', f'instance=~"${INSTANCE_VAR}"', *matchers),
    )
    return f"{metric}{{{inner}}}"


def rate(selector: str) -> str:
    return f"rate({selector}[{RATE_INTERVAL}])"


def increase_in_range(selector: str) -> str:
    """How many times it happened in the dashboard's time range."""
    return f"increase({selector}[{RANGE}])"


# Panels ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str = ""
    empty_while_healthy: str | None = None
    """Why this query has no series on a healthy fleet (the end-to-end test allows it empty)."""
    instant: bool = False
    table: bool = False


@dataclass(frozen=True)
class Step:
    color: str
    value: float | None
    """None: the base colour below every other step."""


@dataclass(frozen=True)
class Panel:
    kind: PanelKind
    title: str
    description: str
    unit: str
    queries: tuple[Query, ...]
    width: int
    height: int = 8
    watch: tuple[str, ...] = ()
    """Threshold names of the table: their values become the panel's steps (unless `steps` is
    given), their alerts the panel's runbook links."""
    steps: tuple[Step, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    mappings: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    """Value -> (text, colour) for stats of conditions (1 up, 0 down)."""
    stat_reduce: str = "lastNotNull"
    hide_columns: tuple[str, ...] = ("Time",)
    """Table columns the organize transformation hides."""


@dataclass(frozen=True)
class DashboardSpec:
    uid: str
    title: str
    description: str
    rows: tuple[tuple[Panel, ...], ...]


@dataclass(frozen=True)
class PlacedPanel:
    """A panel with the id and position it has in the generated JSON."""

    id: int
    panel: Panel


@dataclass(frozen=True)
class Context:
    """What every dashboard module reads: the thresholds table and where runbooks live."""

    thresholds: Thresholds
    runbook_base_url: str
    scope: Scope = field(default_factory=Scope)
    """With a cluster label: a $cluster variable, and every query restricted to it."""

    def t(self, name: str) -> Threshold:
        return self.thresholds[name]

    def runbook_url(self, alert: str) -> str:
        return f"{self.runbook_base_url}{alert}.md"


def step_value(threshold: Threshold) -> float:
    value = threshold.number()
    return value + COUNT_EPSILON if threshold.unit == "count" else value


def steps_from(ctx: Context, names: Sequence[str], base: str = OK_COLOR) -> tuple[Step, ...]:
    """The base colour, then one step per valued threshold in ``names``, by value."""
    valued = [ctx.t(name) for name in names if ctx.t(name).value is not None]
    ordered = sorted(valued, key=step_value)
    return (Step(base, None), *(Step(SEVERITY_COLOR[t.severity], step_value(t)) for t in ordered))


def alerts_of(ctx: Context, panel: Panel) -> list[str]:
    return list(dict.fromkeys(ctx.t(name).alert for name in panel.watch))


def place(spec: DashboardSpec) -> list[tuple[PlacedPanel, g.GridPos]]:
    """Ids 1..n in reading order; rows left to right, each row below the tallest of the last."""
    placed = []
    y = 0
    next_id = 1
    for row in spec.rows:
        x = 0
        for panel in row:
            if x + panel.width > GRID_WIDTH:
                raise ValueError(f"{spec.uid}: row with {panel.title!r} is wider than 24")
            placed.append(
                (PlacedPanel(next_id, panel), g.GridPos(h=panel.height, w=panel.width, x=x, y=y))
            )
            next_id += 1
            x += panel.width
        y += max(p.height for p in row)
    return placed


def _description(panel: Panel) -> str:
    empty = [q.empty_while_healthy for q in panel.queries if q.empty_while_healthy]
    if not empty:
        return panel.description
    return panel.description + " Empty while healthy: " + " ".join(dict.fromkeys(empty))


def _targets(ctx: Context, panel: Panel) -> list[g.Target]:
    return [
        g.Target(
            expr=ctx.scope.panel(q.expr),
            legendFormat=q.legend,
            refId=chr(ord("A") + i),
            instant=q.instant,
            format="table" if q.table else "time_series",
            datasource=dict(DATASOURCE),
            intervalFactor=1,
        )
        for i, q in enumerate(panel.queries)
    ]


def _steps_json(steps: Sequence[Step]) -> list[dict[str, Any]]:
    return [{"color": s.color, "value": s.value} for s in steps]


def _mappings_json(panel: Panel) -> list[dict[str, Any]]:
    if not panel.mappings:
        return []
    options = {
        value: {"color": color, "index": i, "text": text}
        for i, (value, (text, color)) in enumerate(sorted(panel.mappings.items()))
    }
    return [{"options": options, "type": "value"}]


def _grafanalib_panel(ctx: Context, placed: PlacedPanel, pos: g.GridPos) -> Any:
    panel = placed.panel
    steps = panel.steps if panel.steps is not None else steps_from(ctx, panel.watch)
    links = [
        {"targetBlank": True, "title": f"Runbook: {alert}", "url": ctx.runbook_url(alert)}
        for alert in alerts_of(ctx, panel)
    ]
    common: dict[str, Any] = {
        "title": panel.title,
        "description": _description(panel),
        "dataSource": dict(DATASOURCE),
        "targets": _targets(ctx, panel),
        "gridPos": pos,
        "id": placed.id,
        "links": links,
    }
    if panel.kind == "timeseries":
        return g.TimeSeries(
            **common,
            unit=panel.unit,
            thresholds=_steps_json(steps),
            thresholdsStyleMode="line" if len(steps) > 1 else "off",
            mappings=_mappings_json(panel),
            valueMin=panel.minimum,
            valueMax=panel.maximum,
            fillOpacity=10,
            showPoints="never",
            legendDisplayMode="table",
            legendCalcs=["lastNotNull", "max"],
            tooltipMode="multi",
        )
    if panel.kind == "stat":
        return g.Stat(
            **common,
            format=panel.unit,
            thresholds=_steps_json(steps),
            mappings=_mappings_json(panel),
            reduceCalc=panel.stat_reduce,
            graphMode="none",
            colorMode="background",
            color={"mode": "thresholds"},
            noValue="no data",
        )
    if panel.kind == "gauge":
        return g.GaugePanel(
            **common, format=panel.unit, calc=panel.stat_reduce, thresholds=_steps_json(steps)
        )
    if panel.kind == "bargauge":
        return g.BarGauge(
            **common,
            format=panel.unit,
            calc=panel.stat_reduce,
            thresholds=_steps_json(steps),
            displayMode="gradient",
        )
    if panel.kind == "table":
        return g.Table(
            **common,
            unit=panel.unit,
            thresholds=_steps_json(steps),
            transformations=[
                {
                    "id": "organize",
                    "options": {"excludeByName": dict.fromkeys(panel.hide_columns, True)},
                }
            ],
        )
    return g.Text(**common, content=panel.description)


def _modernize(panel: Panel, data: dict[str, Any]) -> dict[str, Any]:
    """Write the gauge and bar gauge in the shape current Grafana reads (see module doc)."""
    if panel.kind in ("gauge", "bargauge"):
        defaults = data["fieldConfig"]["defaults"]
        data["fieldConfig"] = {
            "defaults": {
                "decimals": None,
                "mappings": _mappings_json(panel),
                "max": panel.maximum,
                "min": panel.minimum,
                "thresholds": defaults["thresholds"],
                "unit": panel.unit,
            },
            "overrides": [],
        }
        options: dict[str, Any] = {
            "orientation": "horizontal" if panel.kind == "bargauge" else "auto",
            "reduceOptions": {"calcs": [panel.stat_reduce], "fields": "", "values": False},
            "showThresholdLabels": False,
            "showThresholdMarkers": True,
        }
        if panel.kind == "bargauge":
            options["displayMode"] = "gradient"
            options["showUnfilled"] = True
        data["options"] = options
        for legacy in ("showThresholdLabels", "showThresholdMarkers"):
            data.pop(legacy, None)
    if panel.kind in ("stat", "timeseries", "table") and panel.minimum is not None:
        data["fieldConfig"]["defaults"]["min"] = panel.minimum
    if panel.kind in ("stat", "timeseries", "table") and panel.maximum is not None:
        data["fieldConfig"]["defaults"]["max"] = panel.maximum
    return data


def _plain(obj: Any) -> Any:
    """grafanalib objects -> plain JSON values."""
    return json.loads(json.dumps(obj, cls=DashboardEncoder))


def _template(name: str, label: str, query: str, *, pick_one: bool = False) -> g.Template:
    return g.Template(
        name=name,
        label=label,
        query=query,
        dataSource=dict(DATASOURCE),
        includeAll=not pick_one,
        multi=not pick_one,
        allValue=None if pick_one else ".+",
        refresh=2,
        sort=1,
        default=None if pick_one else "$__all",
    )


def templating(up_metric: str, scope: Scope | None = None) -> g.Templating:
    """Data source, then job and instance from the series every memorywatch target has. With
    a cluster label, a cluster variable (one cluster at a time) comes first and the job and
    instance lists are of that cluster."""
    scope = scope or Scope()
    job_matchers = [*scope.panel_matchers]
    by_job = f'job=~"${JOB_VAR}"'

    def listed_by(matchers: list[str]) -> str:
        return up_metric + ("{" + ",".join(matchers) + "}" if matchers else "")

    cluster = []
    if scope.cluster_label:
        query = f"label_values({listed_by([*scope.matchers])}, {scope.cluster_label})"
        cluster = [_template(CLUSTER_VAR, "Cluster", query, pick_one=True)]

    return g.Templating(
        list=[
            g.Template(
                name=DATASOURCE_VAR,
                label="Data source",
                query="prometheus",
                type="datasource",
                default="default",
            ),
            *cluster,
            _template(JOB_VAR, "Job", f"label_values({listed_by(job_matchers)}, job)"),
            _template(
                INSTANCE_VAR,
                "Instance",
                f"label_values({listed_by([*job_matchers, by_job])}, instance)",
            ),
        ]
    )


def build_dashboard(ctx: Context, spec: DashboardSpec, up_metric: str) -> dict[str, Any]:
    """The dashboard as plain JSON data: fixed ids, positions and uid; no timestamps."""
    panels = [
        _modernize(placed.panel, _plain(_grafanalib_panel(ctx, placed, pos)))
        for placed, pos in place(spec)
    ]
    dashboard = g.Dashboard(
        title=spec.title,
        description=spec.description,
        uid=spec.uid,
        tags=[TAG],
        panels=panels,
        links=[
            g.DashboardLink(
                title="memorywatch",
                tags=[TAG],
                type="dashboards",
                asDropdown=False,
                includeVars=True,
                keepTime=True,
            )
        ],
        templating=templating(up_metric, ctx.scope),
        refresh="30s",
        timezone="browser",
        graphTooltip=g.GRAPH_TOOLTIP_MODE_SHARED_CROSSHAIR,
        editable=False,
    )
    data: dict[str, Any] = _plain(dashboard)
    for variable in data["templating"]["list"]:
        if variable["includeAll"]:
            variable["current"] = {"selected": True, "text": ["All"], "value": ["$__all"]}
    return data


def placed_panels(spec: DashboardSpec) -> list[PlacedPanel]:
    return [placed for placed, _pos in place(spec)]
