"""`alerts generate --cluster-label --selector`: rules for a Prometheus holding several clusters.

The generated promtool tests then hold two clusters with the same instance and job, one showing
each probe's fault and one sitting on the threshold; they pass only if every aggregation and
join keeps the cluster apart. The parsed rule file is also checked clause by clause.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from alerts_helpers import amtool, promtool
from click.testing import CliRunner

from memorywatch import names
from memorywatch.alerts import render
from memorywatch.alerts.alertmanager import ALERTMANAGER_FILE
from memorywatch.alerts.exporter_self import UP
from memorywatch.cli import main
from memorywatch.scope import AGGREGATIONS, Scope, ScopeError, parse_selector

CLUSTER = "cluster"
SELECTOR = 'namespace="agents"'
SELECTED = ("namespace", "agents")
METRICS = names.METRICS | {UP}
METRIC = re.compile(r"\b([a-z_:][a-z0-9_:]*)\b(\{[^}]*\})?")
CLAUSE = re.compile(r"\b(by|on|without|ignoring)\s*\(([^)]*)\)")
AGGREGATION = re.compile(r"\b(" + "|".join(sorted(AGGREGATIONS)) + r")\b\s*(by|without)?")


def _generate(out: Path, *args: str) -> None:
    """Generated with the test profile: its promtool tests take half the default's time."""
    result = CliRunner().invoke(
        main,
        [
            "alerts",
            "generate",
            "--out-dir",
            str(out),
            "--skip-runbooks",
            "--profile",
            "test",
            *args,
        ],
    )
    assert result.exit_code == 0, result.output


def _ok(result: Any) -> None:
    assert result.returncode == 0, f"{result.args}\n{result.stdout}{result.stderr}"


@pytest.fixture(scope="module")
def scoped(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cluster") / "alerts"
    _generate(out, "--cluster-label", CLUSTER, "--selector", SELECTOR)
    return out


def _exprs(rules_file: Path) -> list[str]:
    groups = yaml.safe_load(rules_file.read_text())["groups"]
    return [rule["expr"] for group in groups for rule in group["rules"]]


@pytest.mark.slow
def test_rules_pass_promtool_and_the_two_cluster_tests_pass(scoped: Path) -> None:
    _ok(promtool("check", "rules", scoped / render.RULES_FILE))
    files = sorted((scoped / render.TESTS_DIR).glob("*.yaml"))
    result = promtool("test", "rules", *files, cwd=scoped)
    _ok(result)
    assert result.stdout.count("SUCCESS") == len(files)
    two_clusters = yaml.safe_load(files[0].read_text())["tests"][0]["input_series"]
    assert {'cluster="a"' in s["series"] for s in two_clusters} == {True, False}


@pytest.mark.slow
def test_the_two_cluster_tests_fail_on_rules_that_merge_clusters(
    scoped: Path, tmp_path: Path
) -> None:
    """The same tests against rules generated without the cluster label: every group with an
    aggregation or an `on` join must fail, so the passing run above means something."""
    plain = tmp_path / "plain"
    _generate(plain, "--selector", SELECTOR)
    merged = tmp_path / "merged"
    shutil.copytree(scoped, merged)
    probe_rules = Path(render.TESTS_DIR) / render.PROBE_RULES_FILE
    shutil.copy(plain / probe_rules, merged / probe_rules)
    groups = yaml.safe_load((plain / render.RULES_FILE).read_text())["groups"]
    grouping = sorted(
        {
            group["name"].removeprefix("memorywatch-")
            for group in groups
            for rule in group["rules"]
            if "alert" in rule and re.search(r"\b(by|on)\s*\(", rule["expr"])
        }
    )
    assert len(grouping) >= 3, f"too few rules aggregate or join to check: {grouping}"
    for name in grouping:
        path = Path(render.TESTS_DIR) / f"{render.GENERATED_TEST_PREFIX}{name}.yaml"
        result = promtool("test", "rules", path, cwd=merged)
        assert result.returncode != 0, f"{name} passes with rules that merge clusters"
        assert "FAILED" in result.stdout + result.stderr


def test_every_clause_keeps_the_cluster_and_selector_labels(scoped: Path) -> None:
    kept = {CLUSTER, SELECTED[0]}
    checked = 0
    for expr in _exprs(scoped / render.RULES_FILE):
        for clause, labels in CLAUSE.findall(expr):
            listed = {label.strip() for label in labels.split(",") if label.strip()}
            if clause in ("by", "on"):
                assert kept <= listed, f"{clause} ({labels}) drops a kept label: {expr}"
                checked += 1
            else:
                assert not kept & listed, f"{clause} ({labels}) drops a kept label: {expr}"
        for match in AGGREGATION.finditer(expr):
            if match.group(2) is None:  # the clause may only follow the argument
                rest = expr[match.end() :]
                assert re.match(r"\((?:[^()]|\([^()]*\))*\)\s*(by|without)", rest), expr
        for metric, block in METRIC.findall(expr):
            if metric.removesuffix("_bucket") in METRICS or metric.startswith("memorywatch:"):
                assert f'{SELECTED[0]}="{SELECTED[1]}"' in block, f"{metric} unselected: {expr}"
    assert checked >= 10


def test_dashboard_links_open_on_the_alerts_cluster(scoped: Path) -> None:
    groups = yaml.safe_load((scoped / render.RULES_FILE).read_text())["groups"]
    urls = [r["annotations"]["dashboard_url"] for g in groups for r in g["rules"] if "alert" in r]
    assert urls and all(u.endswith("&var-cluster={{ $labels.cluster }}") for u in urls)


def test_alertmanager_groups_and_inhibits_within_one_cluster(scoped: Path) -> None:
    config = yaml.safe_load((scoped / ALERTMANAGER_FILE).read_text())
    route = config["route"]["routes"][0]
    assert route["group_by"][:3] == ["alertname", CLUSTER, "instance"]
    assert config["inhibit_rules"]
    for rule in config["inhibit_rules"]:
        assert CLUSTER in rule["equal"], rule
    _ok(amtool("check-config", scoped / ALERTMANAGER_FILE))


def test_the_selectors_job_becomes_the_exporter_job(tmp_path: Path) -> None:
    _generate(tmp_path, "--selector", 'job="mw"')
    exprs = _exprs(tmp_path / render.RULES_FILE)
    assert 'up{job="mw"} == 0' in exprs
    assert all('job="memorywatch"' not in e for e in exprs)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--cluster-label", "k8s-cluster"], "not a Prometheus label name"),
        (["--selector", 'job=~"mw.*"'], 'not label="value"'),
        (["--selector", 'job="a",job="b"'], "matched twice"),
        (["--cluster-label", "region", "--selector", 'region="eu"'], "also matched"),
        (["--selector", 'job="mw"', "--exporter-job", "other"], "differs"),
    ],
)
def test_bad_scope_options_are_one_line_errors(
    tmp_path: Path, args: list[str], message: str
) -> None:
    result = CliRunner().invoke(
        main, ["alerts", "generate", "--out-dir", str(tmp_path), "--skip-runbooks", *args]
    )
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output
    assert not tmp_path.joinpath(render.RULES_FILE).exists()


def test_without_options_the_scope_changes_nothing() -> None:
    expr = 'sum by (instance) (absent(x{a="b"}) and on() y)'
    assert Scope().rule(expr) == expr
    assert Scope().panel(expr) == expr


def test_absent_is_refused_while_a_cluster_label_is_set() -> None:
    """absent() returns one series without the cluster: it cannot say which cluster lacks it."""
    with pytest.raises(ScopeError, match="absent"):
        Scope(CLUSTER).rule('absent(up{job="memorywatch"})')
    assert Scope(selector=parse_selector(SELECTOR)).rule("absent(up)") == (
        f"absent(up{{{SELECTOR}}})"
    )


def test_a_postfix_grouping_and_an_empty_on_keep_the_cluster() -> None:
    scope = Scope(CLUSTER)
    assert scope.rule("sum(x) by (a) / on() group_left(b) count(y)") == (
        "sum(x) by (a, cluster) / on(cluster) group_left(b) count by (cluster)(y)"
    )
