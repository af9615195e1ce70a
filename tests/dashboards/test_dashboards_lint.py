"""The committed dashboards: up to date, and structurally sound for current Grafana."""

from __future__ import annotations

import json
import re
import urllib.parse
from itertools import combinations
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from dashboards_helpers import DASHBOARDS_DIR, ROOT, RUNBOOKS_DIR, committed, targets

from memorywatch import names
from memorywatch.alerts.exporter_self import UP
from memorywatch.alerts.generate import alert_rules, build_groups
from memorywatch.alerts.memory import FORECAST_WINDOW
from memorywatch.alerts.model import DEFAULT_RUNBOOK_BASE_URL, AlertsConfig
from memorywatch.dashboards._style import PANEL_KINDS, TAG, sel
from memorywatch.dashboards.cli import dashboards as dashboards_cli
from memorywatch.dashboards.generate import (
    GENERATE_COMMAND,
    DashboardsConfig,
    render_all,
)
from memorywatch.thresholds import load

DASHBOARDS = committed()
PANELS = [(uid, panel) for uid, data in DASHBOARDS.items() for panel in data["panels"]]
PANEL_IDS = [f"{uid}#{panel['id']}:{panel['title']}" for uid, panel in PANELS]
TARGETS = targets(DASHBOARDS)
TARGET_IDS = [f"{t.uid}#{t.panel_id}{t.ref_id}" for t in TARGETS]
DATASOURCE_UID = "${datasource}"
METRICS = names.METRICS | {UP}


def test_committed_json_equals_the_generator_output() -> None:
    files = render_all(DashboardsConfig(out_dir=DASHBOARDS_DIR))
    drifted = [
        path.name
        for path, content in files.items()
        if not path.is_file() or path.read_text(encoding="utf-8") != content
    ]
    assert not drifted, f"dashboards out of date: {drifted}; run `{GENERATE_COMMAND}`"
    stray = {p.name for p in DASHBOARDS_DIR.glob("*.json")} - {p.name for p in files}
    assert not stray, f"dashboards/ holds files the generator does not write: {stray}"


def test_generate_command_writes_the_same_bytes_twice(tmp_path: Path) -> None:
    runner = CliRunner()
    first = runner.invoke(dashboards_cli, ["generate", "--out-dir", str(tmp_path)])
    assert first.exit_code == 0, first.output
    contents = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert contents == {p.name: p.read_bytes() for p in DASHBOARDS_DIR.glob("*.json")}
    second = runner.invoke(dashboards_cli, ["generate", "--out-dir", str(tmp_path)])
    assert second.output == "up to date\n"
    check = runner.invoke(dashboards_cli, ["check", "--out-dir", str(tmp_path)])
    assert check.exit_code == 0, check.output


def test_check_names_the_command_when_a_file_drifted(tmp_path: Path) -> None:
    runner = CliRunner()
    runner.invoke(dashboards_cli, ["generate", "--out-dir", str(tmp_path)])
    victim = next(tmp_path.iterdir())
    victim.write_text(victim.read_text().replace("memorywatch", "x", 1))
    result = runner.invoke(dashboards_cli, ["check", "--out-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert GENERATE_COMMAND in result.output and victim.name in result.output


def test_a_thresholds_override_moves_the_red_line(tmp_path: Path) -> None:
    override = tmp_path / "t.yaml"
    override.write_text("memory_used_critical: 0.95\nreplica_lag_warning: 12\n")
    runner = CliRunner()
    result = runner.invoke(
        dashboards_cli,
        ["generate", "--out-dir", str(tmp_path / "out"), "--thresholds", str(override)],
    )
    assert result.exit_code == 0, result.output
    overview = json.loads((tmp_path / "out" / "memorywatch-overview.json").read_text())
    steps = {
        panel["title"]: [
            s["value"] for s in panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
        ]
        for panel in overview["panels"]
    }
    assert steps["Memory used of maxmemory"] == [None, 0.8, 0.95]
    assert steps["Replica lag"] == [None, 12, 30]


def test_a_bad_thresholds_file_is_a_one_line_error(tmp_path: Path) -> None:
    override = tmp_path / "t.yaml"
    override.write_text("memory_used_critical: 2\n")
    result = CliRunner().invoke(
        dashboards_cli, ["generate", "--out-dir", str(tmp_path), "--thresholds", str(override)]
    )
    assert result.exit_code == 1
    assert "memory_used_critical" in result.output and "ratio" in result.output


def test_dashboards_have_stable_uids_tags_and_link_to_each_other() -> None:
    assert set(DASHBOARDS) == {
        "memorywatch-overview",
        "memorywatch-locks-tools",
        "memorywatch-redis",
    }
    for data in DASHBOARDS.values():
        assert TAG in data["tags"]
        assert data["id"] is None  # Grafana assigns it; a fixed uid is the identity
        links = [link for link in data["links"] if link["type"] == "dashboards"]
        assert links and all(TAG in link["tags"] for link in links)
        assert all(link["includeVars"] and link["keepTime"] for link in links)


def test_variables_are_datasource_job_and_instance() -> None:
    for data in DASHBOARDS.values():
        variables = {v["name"]: v for v in data["templating"]["list"]}
        assert list(variables) == ["datasource", "job", "instance"]
        assert variables["datasource"]["type"] == "datasource"
        assert variables["datasource"]["query"] == "prometheus"
        for name in ("job", "instance"):
            assert variables[name]["type"] == "query"
            assert variables[name]["query"].startswith("label_values(")
            assert variables[name]["datasource"]["uid"] == DATASOURCE_UID


def test_no_timestamps_or_volatile_fields() -> None:
    for path in DASHBOARDS_DIR.glob("*.json"):
        text = path.read_text()
        assert not re.search(r"20\d\d-\d\d-\d\d", text), path
        assert json.loads(text)["version"] == 0


@pytest.mark.parametrize("uid", sorted(DASHBOARDS))
def test_panel_ids_are_unique(uid: str) -> None:
    ids = [panel["id"] for panel in DASHBOARDS[uid]["panels"]]
    assert all(isinstance(i, int) and i > 0 for i in ids)
    assert len(ids) == len(set(ids))


def _overlap(a: dict[str, int], b: dict[str, int]) -> bool:
    return (
        a["x"] < b["x"] + b["w"]
        and b["x"] < a["x"] + a["w"]
        and a["y"] < b["y"] + b["h"]
        and b["y"] < a["y"] + a["h"]
    )


@pytest.mark.parametrize("uid", sorted(DASHBOARDS))
def test_grid_positions_do_not_overlap_and_fit_24_columns(uid: str) -> None:
    panels = DASHBOARDS[uid]["panels"]
    for panel in panels:
        pos = panel["gridPos"]
        assert pos["x"] >= 0 and pos["y"] >= 0 and pos["w"] > 0 and pos["h"] > 0
        assert pos["x"] + pos["w"] <= 24, panel["title"]
    for a, b in combinations(panels, 2):
        assert not _overlap(a["gridPos"], b["gridPos"]), (a["title"], b["title"])


@pytest.mark.parametrize(("uid", "panel"), PANELS, ids=PANEL_IDS)
def test_panel_type_is_rendered_by_current_grafana(uid: str, panel: dict[str, Any]) -> None:
    assert panel["type"] not in ("graph", "singlestat", "row")
    assert panel["type"] in PANEL_KINDS


@pytest.mark.parametrize(("uid", "panel"), PANELS, ids=PANEL_IDS)
def test_panel_has_unit_description_and_datasource(uid: str, panel: dict[str, Any]) -> None:
    assert panel["description"].strip()
    assert panel["fieldConfig"]["defaults"].get("unit"), "no unit"
    assert panel["datasource"]["uid"] == DATASOURCE_UID
    assert panel["targets"], "no query"
    for target in panel["targets"]:
        assert target["datasource"] == {"type": "prometheus", "uid": DATASOURCE_UID}


@pytest.mark.parametrize(("uid", "panel"), PANELS, ids=PANEL_IDS)
def test_thresholds_start_with_a_base_step_in_order(uid: str, panel: dict[str, Any]) -> None:
    steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert steps and steps[0]["value"] is None
    values = [s["value"] for s in steps[1:]]
    assert all(isinstance(v, int | float) for v in values)
    assert values == sorted(values)


RANGE_SELECTOR = re.compile(r"\[([^\]]*)\]")
RATE_CALL = re.compile(r"\b(rate|irate)\(")
METRIC_TOKEN = re.compile(r"(?<![\w:\"$])([a-zA-Z_:][\w:]*)\s*(\{)?")


@pytest.mark.parametrize("target", TARGETS, ids=TARGET_IDS)
def test_expression_windows_and_selectors(target: Any) -> None:
    expr = target.expr
    # The forecast panel draws its alert's predict_linear, over the alert's fixed window.
    forecast = f"predict_linear({sel(names.REDIS_MEMORY_USED)}[{FORECAST_WINDOW}]"
    windows = RANGE_SELECTOR.findall(expr.replace(forecast, "predict_linear("))
    # A rate is over $__rate_interval; a total over the dashboard's range is over $__range.
    assert all(w in ("$__rate_interval", "$__range") for w in windows), windows
    for match in RATE_CALL.finditer(expr):
        window = RANGE_SELECTOR.search(expr, match.end())
        assert window is not None and window.group(1) == "$__rate_interval", expr
    # Every metric is scoped by the job and instance variables.
    metrics = [
        m for m in METRIC_TOKEN.finditer(expr) if m.group(1).removesuffix("_bucket") in METRICS
    ]
    assert metrics, f"no known metric in {expr}"
    for m in metrics:
        assert m.group(2), f"{m.group(1)} without a selector in {expr}"
        block = expr[m.end() : expr.index("}", m.end())]
        assert 'job=~"$job"' in block and 'instance=~"$instance"' in block, expr


def _runbook_links(panel: dict[str, Any]) -> list[str]:
    return [link["url"] for link in panel["links"] if link["title"].startswith("Runbook:")]


@pytest.mark.parametrize(("uid", "panel"), PANELS, ids=PANEL_IDS)
def test_runbook_links_resolve_to_files(uid: str, panel: dict[str, Any]) -> None:
    for url in _runbook_links(panel):
        assert url.startswith(DEFAULT_RUNBOOK_BASE_URL), url
        assert (RUNBOOKS_DIR / url.removeprefix(DEFAULT_RUNBOOK_BASE_URL)).is_file(), url


def test_every_alert_is_linked_from_the_dashboard_its_rule_points_to() -> None:
    linked = {
        (uid, url.removeprefix(DEFAULT_RUNBOOK_BASE_URL).removesuffix(".md"))
        for uid, panel in PANELS
        for url in _runbook_links(panel)
    }
    missing = sorted(
        {
            (rule.dashboard, rule.alert)
            for rule in alert_rules(build_groups(AlertsConfig()))
            if (rule.dashboard, rule.alert) not in linked
        }
    )
    assert not missing, f"alerts whose dashboard_url dashboard has no panel for them: {missing}"


def test_every_alert_opens_the_panel_that_links_its_runbook() -> None:
    """dashboard_url ends in ?viewPanel=N: panel N of that dashboard exists and links the
    alert's runbook (it draws the number the alert watches)."""
    rules = yaml.safe_load((ROOT / "alerts" / "memorywatch.rules.yaml").read_text())
    panels = {(uid, panel["id"]): panel for uid, panel in PANELS}
    checked = 0
    for group in rules["groups"]:
        for rule in group["rules"]:
            if "alert" not in rule:
                continue
            url = urllib.parse.urlsplit(rule["annotations"]["dashboard_url"])
            uid = url.path.rstrip("/").rpartition("/")[2]
            (panel_id,) = urllib.parse.parse_qs(url.query)["viewPanel"]
            panel = panels[(uid, int(panel_id))]
            runbook = rule["annotations"]["runbook_url"]
            assert runbook in _runbook_links(panel), (rule["alert"], panel["title"])
            checked += 1
    assert checked >= 30


def test_panel_thresholds_are_the_alert_thresholds() -> None:
    """Where a panel draws lines for an alert, they are the values of the thresholds table."""
    table = load()
    by_alert: dict[str, set[float]] = {}
    for t in table:
        if t.value is not None and t.unit != "count":
            by_alert.setdefault(t.alert, set()).add(t.value)
    checked = 0
    for _uid, panel in PANELS:
        steps = {s["value"] for s in panel["fieldConfig"]["defaults"]["thresholds"]["steps"][1:]}
        for url in _runbook_links(panel):
            alert = url.removeprefix(DEFAULT_RUNBOOK_BASE_URL).removesuffix(".md")
            if steps and by_alert.get(alert) and by_alert[alert] & steps:
                checked += 1
                assert by_alert[alert] <= steps or steps <= by_alert[alert], panel["title"]
    assert checked >= 10


def test_provisioning_points_grafana_at_the_dashboards() -> None:
    provisioning = ROOT / "deploy" / "grafana" / "provisioning"
    datasources = yaml.safe_load((provisioning / "datasources" / "prometheus.yaml").read_text())
    (source,) = datasources["datasources"]
    assert source["type"] == "prometheus" and source["isDefault"] is True
    providers = yaml.safe_load((provisioning / "dashboards" / "memorywatch.yaml").read_text())
    (provider,) = providers["providers"]
    assert provider["type"] == "file"
    assert Path(provider["options"]["path"]).name == DASHBOARDS_DIR.name


def test_the_memorywatch_command_has_the_dashboards_group() -> None:
    from memorywatch.cli import main

    result = CliRunner().invoke(main, ["dashboards", "check", "--out-dir", str(DASHBOARDS_DIR)])
    assert result.exit_code == 0, result.output
    assert result.output == "up to date\n"
