"""The committed alerts/ files and runbook threshold blocks are what the generator makes now."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from alerts_helpers import ALERTS_DIR, REPO, RULES_FILE, RUNBOOKS_DIR
from click.testing import CliRunner

from memorywatch import names
from memorywatch.alerts.generate import (
    GENERATE_COMMAND,
    GenerateConfig,
    alert_rules,
    build_groups,
    check,
    generate,
)
from memorywatch.alerts.model import AlertsConfig
from memorywatch.cli import main
from memorywatch.thresholds import DEFAULTS


def test_committed_files_equal_the_generator_output() -> None:
    drifted = check(
        GenerateConfig(alerts=AlertsConfig(), out_dir=ALERTS_DIR, runbooks_dir=RUNBOOKS_DIR)
    )
    assert not drifted, (
        f"out of date: {[str(p.relative_to(REPO)) for p in drifted]}; "
        f"run `{GENERATE_COMMAND}` in {REPO} and commit the result"
    )


def test_generation_is_byte_deterministic(tmp_path: Path) -> None:
    outputs = []
    for run in ("a", "b"):
        out = tmp_path / run
        generate(GenerateConfig(alerts=AlertsConfig(), out_dir=out, runbooks_dir=None))
        outputs.append({p.relative_to(out): p.read_bytes() for p in sorted(out.rglob("*.yaml"))})
    assert outputs[0] == outputs[1]
    for content in outputs[0].values():
        assert not re.search(rb"20\d\d-\d\d-\d\d", content)


def test_check_command_names_the_command_to_run(tmp_path: Path) -> None:
    out = tmp_path / "alerts"
    runner = CliRunner()
    stale = runner.invoke(main, ["alerts", "check", "--out-dir", str(out), "--skip-runbooks"])
    assert stale.exit_code == 1
    assert GENERATE_COMMAND in stale.output
    made = runner.invoke(main, ["alerts", "generate", "--out-dir", str(out), "--skip-runbooks"])
    assert made.exit_code == 0, made.output
    fresh = runner.invoke(main, ["alerts", "check", "--out-dir", str(out), "--skip-runbooks"])
    assert fresh.exit_code == 0 and "up to date" in fresh.output


def test_runbook_base_url_option(tmp_path: Path) -> None:
    out = tmp_path / "alerts"
    base = "https://runbooks.internal/mw/"
    result = CliRunner().invoke(
        main,
        [
            "alerts",
            "generate",
            "--out-dir",
            str(out),
            "--skip-runbooks",
            "--runbook-base-url",
            base,
        ],
    )
    assert result.exit_code == 0, result.output
    groups = yaml.safe_load((out / "memorywatch.rules.yaml").read_text())["groups"]
    urls = [r["annotations"]["runbook_url"] for g in groups for r in g["rules"] if "alert" in r]
    assert urls and all(u.startswith(base) and u.endswith(".md") for u in urls)


def test_every_threshold_drives_an_alert_and_every_alert_reads_the_table() -> None:
    rules = alert_rules(build_groups(AlertsConfig()))
    alerts = {r.alert for r in rules}
    assert {t.alert for t in DEFAULTS} == alerts
    for rule in rules:
        assert rule.threshold in DEFAULTS
        assert rule.severity in ("critical", "warning", "info")
        assert re.fullmatch(r"(Redis|Agent)[A-Z][A-Za-z]+", rule.alert), rule.alert


def test_expressions_use_only_known_metric_names() -> None:
    known = names.METRICS
    groups = yaml.safe_load(RULES_FILE.read_text())["groups"]
    records = {r["record"] for g in groups for r in g["rules"] if "record" in r}
    for group in groups:
        for rule in group["rules"]:
            for metric in re.findall(r"\b((?:redis|memorywatch)_[a-z0-9_]+)", rule["expr"]):
                base = re.sub(r"_(bucket|count|sum)$", "", metric)
                assert metric in known or base in known or metric in records, metric


def test_joins_keep_instance_and_job() -> None:
    """`on(...)` and `by (...)` must name instance and job; otherwise job is silently dropped."""
    groups = yaml.safe_load(RULES_FILE.read_text())["groups"]
    for group in groups:
        for rule in group["rules"]:
            for clause in re.findall(r"\b(?:on|by)\s*\(([^)]*)\)", rule["expr"]):
                labels = {label.strip() for label in clause.split(",")}
                assert {"instance", "job"} <= labels, (rule.get("alert"), clause)
            for clause in re.findall(r"\b(?:ignoring|without)\s*\(([^)]*)\)", rule["expr"]):
                assert not {"instance", "job"} & {x.strip() for x in clause.split(",")}


def test_annotations_follow_the_conventions() -> None:
    groups = yaml.safe_load(RULES_FILE.read_text())["groups"]
    for group in groups:
        for rule in group["rules"]:
            if "alert" not in rule:
                continue
            notes = rule["annotations"]
            assert set(notes) == {"summary", "description", "runbook_url", "dashboard_url"}
            assert "{{" not in notes["summary"] and notes["summary"].endswith(".")
            assert "{{ $labels." in notes["description"] or "{{ $value" in notes["description"]
            assert set(rule["labels"]) == {"severity"}


def test_probe_rules_are_the_shipped_rules_but_for_the_description() -> None:
    """The generated promtool tests run against alerts/tests/rules/probe.rules.yaml, which
    must be the shipped rules with only the description swapped for the raw value: the
    same expressions, for, labels, runbook and dashboard links."""
    shipped = yaml.safe_load(RULES_FILE.read_text())
    probe = yaml.safe_load((ALERTS_DIR / "tests" / "rules" / "probe.rules.yaml").read_text())
    alerts = 0
    for ours, theirs in zip(shipped["groups"], probe["groups"], strict=True):
        assert ours["name"] == theirs["name"]
        for rule, probed in zip(ours["rules"], theirs["rules"], strict=True):
            if "alert" in rule:
                alerts += 1
                notes = dict(rule.pop("annotations"))
                probed_notes = dict(probed.pop("annotations"))
                assert notes.pop("description")
                assert probed_notes.pop("value") == '{{ $value | printf "%.6f" }}'
                assert probed_notes == notes
            assert probed == rule
    assert alerts >= 30
