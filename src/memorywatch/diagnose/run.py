"""One diagnosis: gather the facts, ask every hypothesis, weigh in Prometheus, rank."""

from __future__ import annotations

import time
from collections.abc import Sequence

from memorywatch import thresholds as th
from memorywatch.alerts.generate import alert_rules, build_groups
from memorywatch.alerts.model import AlertRule, AlertsConfig
from memorywatch.diagnose import facts as f
from memorywatch.diagnose.checks import HYPOTHESES
from memorywatch.diagnose.model import Cause, Checked, Finding, Hypothesis, Report
from memorywatch.diagnose.prometheus import Prometheus, PrometheusError
from memorywatch.exporter.config import ExporterConfig
from memorywatch.exporter.fleet_options import FleetOptions

SEVERITY_RANK = {"critical": 0, "warning": 1, "info": 2}


def runbook_command(alert: str) -> str:
    return f"memorywatch runbook {alert}"


def _severity(alert: str, table: th.Thresholds) -> str:
    """The alert's lowest severity in the table (a two-level alert starts at warning)."""
    levels = [t.severity for t in table if t.alert == alert and t.for_seconds is not None]
    return max(levels, key=lambda s: SEVERITY_RANK[s]) if levels else "warning"


def diagnose(
    config: ExporterConfig,
    options: FleetOptions,
    table: th.Thresholds,
    prometheus: Prometheus | None = None,
    alert: str | None = None,
) -> Report:
    """The report; ``alert`` puts that alert's hypothesis first and says if it was ruled out."""
    started = time.monotonic()
    rules = alert_rules(build_groups(AlertsConfig(thresholds=table)))
    hypotheses = with_every_alert(rules)
    known = {h.alert for h in hypotheses}
    if alert is not None and alert not in known:
        raise ValueError(f"no alert {alert!r}: memorywatch's alerts are {', '.join(sorted(known))}")
    order: Sequence[Hypothesis] = sorted(hypotheses, key=lambda h: h.alert != alert)
    report = Report(target=config.target.display)
    findings: dict[str, Finding] = {}
    try:
        facts: f.Facts | None = f.gather(config, options)
    except f.Unreachable as exc:
        facts = None
        report.unreachable = True
        report.errors.append(str(exc))
        findings["RedisDown"] = Finding(
            "Redis does not answer: no agent can read or write its memory.", (str(exc),), 3.0
        )
    if facts is not None:
        report.errors += facts.errors
        if facts.fleet_error:
            report.errors.append(f"fleet state: {facts.fleet_error}")
        for hypothesis in order:
            if hypothesis.check is None:
                continue
            found = hypothesis.check(facts, table)
            if found is not None:
                findings[hypothesis.alert] = found
    seen_by_prometheus = _ask_prometheus(prometheus, rules, alert, report)
    for hypothesis in order:
        name = hypothesis.alert
        redis_found = findings.get(name)
        prom = seen_by_prometheus.get(name)
        if redis_found is None and prom is None:
            blind = (facts is None and name != "RedisDown") or (
                hypothesis.check is None and prometheus is None
            )
            outcome = "unknown" if blind else "ruled out"
            report.checked.append(Checked(name, hypothesis.question, outcome))
            continue
        report.checked.append(Checked(name, hypothesis.question, "found"))
        summary = redis_found.summary if redis_found else f"Prometheus: {name} holds now."
        evidence = (*(redis_found.evidence if redis_found else ()), *(prom or ()))
        source = "+".join(s for s, v in (("redis", redis_found), ("prometheus", prom)) if v)
        severity = (redis_found.severity if redis_found else None) or _severity(name, table)
        report.causes.append(
            Cause(name, severity, summary, evidence, hypothesis.mitigation,
                  runbook_command(name), source)
        )  # fmt: skip
    prior = {h.alert: i for i, h in enumerate(hypotheses)}
    excess = {name: found.excess for name, found in findings.items()}
    # The paged alert is checked first but ranked like any other: paged for the misses an
    # eviction caused, the eviction is what to fix.
    report.causes.sort(
        key=lambda c: (
            SEVERITY_RANK.get(c.severity, 3),
            prior[c.alert],
            -excess.get(c.alert, 1.0),
        )
    )
    report.elapsed = time.monotonic() - started
    return report


def with_every_alert(rules: Sequence[AlertRule]) -> tuple[Hypothesis, ...]:
    """The checks, then every other alert of the rules as a question only Prometheus answers
    (its runbook holds the diagnosis a person runs): ``--alert`` takes any alert we ship."""
    known = {h.alert for h in HYPOTHESES}
    extra = {
        rule.alert: Hypothesis(
            rule.alert,
            rule.summary,
            f"see the Mitigation section of `{runbook_command(rule.alert)}`",
            None,
        )
        for rule in rules
        if rule.alert not in known
    }
    return (*HYPOTHESES, *extra.values())


def _ask_prometheus(
    prometheus: Prometheus | None,
    rules: Sequence[AlertRule],
    alert: str | None,
    report: Report,
) -> dict[str, list[str]]:
    """Alert -> evidence lines, for the alerts whose own expression holds in Prometheus now."""
    if prometheus is None:
        return {}
    seen: dict[str, list[str]] = {}
    try:
        for rule in rules:
            series = prometheus.expression_now(rule.expr)
            if series:
                seen.setdefault(rule.alert, []).extend(
                    f"Prometheus: the {rule.severity} rule's expression holds now: {line}"
                    for line in series
                )
        if alert is not None:
            fired = prometheus.firing_evaluations(alert)
            if alert in seen:
                seen[alert].append(
                    f"Prometheus: {alert} was firing at {fired} rule evaluations in the last hour"
                )
    except PrometheusError as exc:
        report.errors.append(f"prometheus: {exc}")
    return seen
