"""Everything `memorywatch alerts generate` writes, as one pure function of its config."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Final

from memorywatch.alerts import (
    alertmanager,
    clients,
    exporter_self,
    fleet,
    latency,
    locks,
    memory,
    persistence,
    redis_health,
    replication,
    state,
    tools,
)
from memorywatch.alerts import render as r
from memorywatch.alerts.model import AlertRule, AlertsConfig, RuleGroup
from memorywatch.alerts.runbooks import refresh_threshold_block

GROUP_MODULES: Final = (
    redis_health,
    latency,
    memory,
    clients,
    replication,
    persistence,
    locks,
    tools,
    state,
    fleet,
    exporter_self,
)

GENERATE_COMMAND: Final = "memorywatch alerts generate"


@dataclass(frozen=True)
class GenerateConfig:
    alerts: AlertsConfig
    out_dir: Path
    runbooks_dir: Path | None
    """None: leave runbooks alone (e.g. when generating a test profile elsewhere)."""
    routing: alertmanager.RoutingConfig = field(default_factory=alertmanager.RoutingConfig)
    """alertmanager.yaml: the labels of one Redis deployment, the route's timings."""


def build_groups(cfg: AlertsConfig) -> tuple[RuleGroup, ...]:
    return tuple(_scoped(module.group(cfg), cfg) for module in GROUP_MODULES)


def _scoped(group: RuleGroup, cfg: AlertsConfig) -> RuleGroup:
    """Every expression of the group with the cluster label kept and the selector applied."""
    scope = cfg.scope
    return replace(
        group,
        alerts=tuple(replace(a, expr=scope.rule(a.expr)) for a in group.alerts),
        records=tuple(replace(r, expr=scope.rule(r.expr)) for r in group.records),
    )


def alert_rules(groups: tuple[RuleGroup, ...]) -> list[AlertRule]:
    return [rule for group in groups for rule in group.alerts]


def alert_names(groups: tuple[RuleGroup, ...]) -> list[str]:
    return list(dict.fromkeys(rule.alert for rule in alert_rules(groups)))


def alert_severities(groups: tuple[RuleGroup, ...]) -> dict[str, tuple[str, ...]]:
    """Alert name -> the severities its rules ship with."""
    return alertmanager.severities_of((rule.alert, rule.severity) for rule in alert_rules(groups))


def render_all(config: GenerateConfig) -> tuple[dict[Path, str], list[str]]:
    """Path -> content of every generated file, and warnings (alerts without a runbook)."""
    cfg = config.alerts
    groups = build_groups(cfg)
    out = config.out_dir
    files = {
        out / r.RULES_FILE: r.dump(r.rules_document(groups, cfg)),
        out / r.CRD_FILE: r.dump(r.prometheusrule_document(groups, cfg)),
        out / alertmanager.ALERTMANAGER_FILE: alertmanager.render(
            alert_severities(groups), config.routing, GENERATE_COMMAND
        ),
        out / r.TESTS_DIR / r.PROBE_RULES_FILE: r.dump(
            r.rules_document(groups, cfg, probe=True), r.PROBE_NOTE
        ),
    }
    for group in groups:
        if group.alerts:
            files[out / r.TESTS_DIR / r.test_file_name(group)] = r.dump(r.test_document(group, cfg))
    warnings = []
    if config.runbooks_dir is not None:
        rules = alert_rules(groups)
        for name in alert_names(groups):
            path = config.runbooks_dir / f"{name}.md"
            if not path.is_file():
                warnings.append(f"no runbook for {name}: write {path}")
                continue
            same_name = [rule for rule in rules if rule.alert == name]
            files[path] = refresh_threshold_block(
                path.read_text(encoding="utf-8"), same_name, cfg.thresholds.for_alert(name)
            )
    return files, warnings


def generate(config: GenerateConfig) -> tuple[list[Path], list[str]]:
    """Write what changed; returns the paths written and the warnings."""
    files, warnings = render_all(config)
    written = []
    for path, text in files.items():
        if path.is_file() and path.read_text(encoding="utf-8") == text:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    stale = _stale_generated_tests(config, files)
    for path in stale:
        path.unlink()
        written.append(path)
    return written, warnings


def check(config: GenerateConfig) -> list[Path]:
    """Files whose content differs from what the generator produces now (or that it would delete)."""
    files, _ = render_all(config)
    drifted = [
        path
        for path, text in files.items()
        if not path.is_file() or path.read_text(encoding="utf-8") != text
    ]
    return drifted + _stale_generated_tests(config, files)


def _stale_generated_tests(config: GenerateConfig, files: dict[Path, str]) -> list[Path]:
    tests_dir = config.out_dir / r.TESTS_DIR
    if not tests_dir.is_dir():
        return []
    return sorted(p for p in tests_dir.glob(f"{r.GENERATED_TEST_PREFIX}*.yaml") if p not in files)
