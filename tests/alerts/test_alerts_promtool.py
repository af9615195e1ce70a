"""The committed rules pass `promtool check rules` and every promtool unit test under alerts/tests.

The generated tests are also regenerated for the `test` profile and for an override file and run
again, so the generator stays honest for thresholds other than the defaults.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from alerts_helpers import ALERTS_DIR, CRD_FILE, RULES_FILE, promtool

from memorywatch.alerts import render
from memorywatch.alerts.generate import GenerateConfig, alert_rules, build_groups, generate
from memorywatch.alerts.model import ONSET, AlertsConfig
from memorywatch.thresholds import load, parse_duration


def assert_ok(result: object) -> None:
    assert getattr(result, "returncode", 1) == 0, (
        f"{getattr(result, 'args', '')}\n{getattr(result, 'stdout', '')}"
        f"{getattr(result, 'stderr', '')}"
    )


def test_rule_file_passes_promtool_check() -> None:
    result = promtool("check", "rules", RULES_FILE)
    assert_ok(result)
    rules = sum(len(g["rules"]) for g in yaml.safe_load(RULES_FILE.read_text())["groups"])
    assert f"SUCCESS: {rules} rules found" in result.stdout


def test_prometheusrule_spec_passes_promtool_check(tmp_path: Path) -> None:
    crd = yaml.safe_load(CRD_FILE.read_text())
    assert crd["apiVersion"] == "monitoring.coreos.com/v1"
    assert crd["kind"] == "PrometheusRule"
    assert crd["metadata"]["name"] == "memorywatch"
    extracted = tmp_path / "spec.yaml"
    extracted.write_text(yaml.safe_dump({"groups": crd["spec"]["groups"]}))
    assert_ok(promtool("check", "rules", extracted))
    plain = yaml.safe_load(RULES_FILE.read_text())
    assert crd["spec"]["groups"] == plain["groups"]


def test_committed_promtool_unit_tests_pass() -> None:
    files = sorted((ALERTS_DIR / "tests").glob("*.yaml"))
    assert any(f.name == "handwritten.yaml" for f in files)
    result = promtool("test", "rules", *files, cwd=ALERTS_DIR)
    assert_ok(result)
    assert result.stdout.count("SUCCESS") == len(files)


def test_every_alert_rule_has_a_boundary_case_and_a_silent_case() -> None:
    """Reads the committed test files, not the generator: each (alert, severity) is expected
    exactly at ONSET + for, and has a case at that alert's name where it is not expected."""
    cfg = AlertsConfig()
    interval = cfg.test_interval
    fires: set[tuple[str, str]] = set()
    silent: set[tuple[str, str]] = set()
    for path in (ALERTS_DIR / "tests").glob(f"{render.GENERATED_TEST_PREFIX}*.yaml"):
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case["alert_rule_test"]:
                expected = {a["exp_labels"]["severity"] for a in check["exp_alerts"]}
                for rule in alert_rules(build_groups(cfg)):
                    if rule.alert != check["alertname"]:
                        continue
                    key = (rule.alert, rule.severity)
                    at_boundary = parse_duration(check["eval_time"]) == (
                        ONSET * interval + rule.for_seconds
                    )
                    if rule.severity in expected and at_boundary:
                        fires.add(key)
                    if rule.severity not in expected and rule.severity in case["name"]:
                        silent.add(key)
    every = {(r.alert, r.severity) for r in alert_rules(build_groups(cfg))}
    assert every - fires == set()
    assert every - silent == set()


def _generate_and_test(tmp_path: Path, cfg: AlertsConfig) -> None:
    out = tmp_path / "alerts"
    generate(GenerateConfig(alerts=cfg, out_dir=out, runbooks_dir=None))
    assert_ok(promtool("check", "rules", out / render.RULES_FILE))
    files = sorted((out / "tests").glob("*.yaml"))
    assert len(files) == len([g for g in build_groups(cfg) if g.alerts])
    assert_ok(promtool("test", "rules", *files, cwd=out))


def test_generated_tests_hold_for_the_test_profile(tmp_path: Path) -> None:
    cfg = AlertsConfig(thresholds=load(profile="test"))
    assert cfg.test_interval == 1
    _generate_and_test(tmp_path, cfg)


def test_generated_tests_hold_for_overridden_thresholds(tmp_path: Path) -> None:
    overrides = tmp_path / "thresholds.yaml"
    overrides.write_text(
        "memory_used_warning: {value: 0.7, for: 90s}\n"
        "lock_wait_p99: {value: 2, for: 3m}\n"
        "state_misses: 3\n"
        "lock_timeouts: {value: 2, for: 2m}\n"
        "tool_duplicate_calls: 1.5\n"
        "replica_lag_bytes: 4194304\n"
        "queue_per_ready_instance: 8\n"
    )
    cfg = AlertsConfig(thresholds=load(overrides), exporter_job="mw-exporter")
    assert cfg.test_interval == 30
    _generate_and_test(tmp_path, cfg)
