"""`dashboards generate --cluster-label --selector`: a cluster variable, every query restricted
to it, the other variables chained on it; without the options nothing changes."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from dashboards_helpers import committed

from harness import binary
from memorywatch import names
from memorywatch.alerts.exporter_self import UP
from memorywatch.dashboards.cli import dashboards as dashboards_cli
from memorywatch.dashboards.generate import DashboardsConfig, render_all
from memorywatch.scope import Scope

METRICS = names.METRICS | {UP}
METRIC = re.compile(r"\b([a-z_:][a-z0-9_:]*)\b(\{[^}]*\})?")
IN_CLUSTER = 'cluster=~"$cluster"'
SELECTED = 'namespace="agents"'


@pytest.fixture(scope="module")
def scoped(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    out = tmp_path_factory.mktemp("dashboards")
    result = CliRunner().invoke(
        dashboards_cli,
        ["generate", "--out-dir", str(out), "--cluster-label", "cluster", "--selector", SELECTED],
    )
    assert result.exit_code == 0, result.output
    return {p.stem: json.loads(p.read_text()) for p in sorted(out.glob("*.json"))}


def _exprs(data: dict[str, Any]) -> list[str]:
    return [t["expr"] for panel in data["panels"] for t in panel.get("targets", [])]


def test_cluster_variable_comes_first_and_the_others_chain_on_it(
    scoped: dict[str, dict[str, Any]],
) -> None:
    assert set(scoped) == set(committed())
    for data in scoped.values():
        variables = {v["name"]: v for v in data["templating"]["list"]}
        assert list(variables) == ["datasource", "cluster", "job", "instance"]
        cluster = variables["cluster"]
        assert cluster["query"] == f"label_values({names.REDIS_UP}{{{SELECTED}}}, cluster)"
        assert cluster["multi"] is False and cluster["includeAll"] is False
        assert IN_CLUSTER in variables["job"]["query"]
        assert IN_CLUSTER in variables["instance"]["query"]
        assert 'job=~"$job"' in variables["instance"]["query"]


def test_every_metric_of_every_query_is_in_the_cluster_and_selected(
    scoped: dict[str, dict[str, Any]],
) -> None:
    plain = committed()
    for uid, data in scoped.items():
        exprs = _exprs(data)
        assert len(exprs) == len(_exprs(plain[uid]))
        for expr in exprs:
            metrics = [
                (m, b) for m, b in METRIC.findall(expr) if m.removesuffix("_bucket") in METRICS
            ]
            assert metrics, expr
            for metric, block in metrics:
                assert IN_CLUSTER in block and SELECTED in block, f"{metric} in {expr}"
                assert 'job=~"$job"' in block and 'instance=~"$instance"' in block, expr


def test_the_default_output_is_the_committed_one() -> None:
    default = render_all(DashboardsConfig())
    assert render_all(DashboardsConfig(scope=Scope())) == default
    for path, text in default.items():
        assert "cluster" not in json.loads(text)["templating"]["list"][1]["name"], path


def test_a_bad_cluster_label_is_a_one_line_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        dashboards_cli, ["generate", "--out-dir", str(tmp_path), "--cluster-label", "1st"]
    )
    assert result.exit_code == 2
    assert "not a Prometheus label name" in result.output and "Traceback" not in result.output
    assert not list(tmp_path.iterdir())


def test_every_scoped_query_parses(scoped: dict[str, dict[str, Any]], tmp_path: Path) -> None:
    """promtool parses each query (variables replaced as Grafana would) as a recording rule."""
    values = {"$__rate_interval": "1m", "$__range": "1h", "$cluster": "a", "$job": ".+"}
    values["$instance"] = ".+"
    rules = []
    for uid, data in scoped.items():
        for i, expr in enumerate(_exprs(data)):
            for name, value in values.items():
                expr = expr.replace(name, value)
            rules.append({"record": f"check:{uid.replace('-', '_')}:{i}", "expr": expr})
    path = tmp_path / "queries.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "queries", "rules": rules}]}))
    result = subprocess.run(
        [binary("promtool"), "check", "rules", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout
