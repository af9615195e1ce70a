"""One diagnosis: gather the facts, ask every hypothesis, weigh in Prometheus, tell causes from
symptoms and risks, rank."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace

from memorywatch import causality, names
from memorywatch import thresholds as th
from memorywatch.alerts.generate import alert_rules, build_groups
from memorywatch.alerts.model import AlertRule, AlertsConfig
from memorywatch.diagnose import facts as f
from memorywatch.diagnose.checks import HYPOTHESES
from memorywatch.diagnose.model import (
    COULD_NOT_CHECK,
    FOUND,
    NEEDS_PROMETHEUS,
    RULED_OUT,
    CannotTell,
    Cause,
    Checked,
    Finding,
    Hypothesis,
    NeedsHistory,
    Report,
)
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
    budget: f.ReadOptions | None = None,
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
    blind: dict[str, Checked] = {}
    try:
        facts: f.Facts | None = f.gather(config, options, budget)
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
        report.sample = describe_sample(facts)
        for hypothesis in order:
            if hypothesis.check is None:
                continue
            try:
                found = hypothesis.check(facts, table)
            except CannotTell as exc:
                blind[hypothesis.alert] = Checked(
                    hypothesis.alert, hypothesis.question, COULD_NOT_CHECK, str(exc)
                )
                continue
            except NeedsHistory as exc:
                blind[hypothesis.alert] = Checked(
                    hypothesis.alert, hypothesis.question, NEEDS_PROMETHEUS, str(exc)
                )
                continue
            if found is not None:
                findings[hypothesis.alert] = found
    seen_by_prometheus, prometheus_error = _ask_prometheus(prometheus, rules, alert, report)
    found_now: list[Cause] = []
    for hypothesis in order:
        name = hypothesis.alert
        redis_found = findings.get(name)
        prom = seen_by_prometheus.get(name)
        if redis_found is None and prom is None:
            report.checked.append(
                _not_found(hypothesis, facts, blind.get(name), prometheus, prometheus_error)
            )
            continue
        report.checked.append(Checked(name, hypothesis.question, FOUND))
        summary = redis_found.summary if redis_found else f"Prometheus: {name} holds now."
        evidence = (*(redis_found.evidence if redis_found else ()), *(prom or ()))
        source = "+".join(s for s, v in (("redis", redis_found), ("prometheus", prom)) if v)
        severity = (redis_found.severity if redis_found else None) or _severity(name, table)
        mitigation = (redis_found.mitigation if redis_found else None) or hypothesis.mitigation
        found_now.append(
            Cause(name, severity, summary, evidence, mitigation, runbook_command(name), source)
        )
    prior = {h.alert: i for i, h in enumerate(hypotheses)}
    excess = {name: found.excess for name, found in findings.items()}
    # The paged alert is checked first but ranked like any other: paged for the misses an
    # eviction caused, the eviction is what to fix.
    found_now.sort(
        key=lambda c: (
            SEVERITY_RANK.get(c.severity, 3),
            prior[c.alert],
            -excess.get(c.alert, 1.0),
        )
    )
    _sort_kinds(found_now, report)
    report.elapsed = time.monotonic() - started
    return report


def _not_found(
    hypothesis: Hypothesis,
    facts: f.Facts | None,
    blind: Checked | None,
    prometheus: Prometheus | None,
    prometheus_error: str | None,
) -> Checked:
    """The outcome of a hypothesis nothing found: ruled out only when a source answered it."""
    name, question = hypothesis.alert, hypothesis.question
    if facts is None and name != "RedisDown":
        return Checked(name, question, COULD_NOT_CHECK, "Redis did not answer")
    if hypothesis.check is not None and blind is None:
        return Checked(name, question, RULED_OUT)
    if prometheus is not None:
        if prometheus_error is None:
            return Checked(name, question, RULED_OUT)  # its own expression does not hold
        return Checked(name, question, COULD_NOT_CHECK, f"Prometheus: {prometheus_error}")
    if blind is not None:
        return blind
    return Checked(name, question, NEEDS_PROMETHEUS, "needs history: give --prometheus-url")


def _sort_kinds(found: list[Cause], report: Report) -> None:
    """Risks apart; a finding is a symptom when a cause found in this run explains it along
    a declared edge of the causality table; the rest are the causes, in ranked order."""
    problems = [c for c in found if c.alert not in causality.RISKS]
    report.risks = [c for c in found if c.alert in causality.RISKS]
    present = [c.alert for c in problems]
    explains = causality.explained_by()
    for cause in problems:
        by = next(
            (p for p in present if p in explains.get(cause.alert, ()) and p != cause.alert), None
        )
        if by is None:
            report.causes.append(cause)
            continue
        edge = causality.edge(by)
        report.symptoms.append(replace(cause, explained_by=by, because=edge.why if edge else None))


def describe_sample(facts: f.Facts) -> str | None:
    """One line: how much of the keyspace the sample saw, and how long it took."""
    if facts.sample_error is not None:
        return f"keyspace sample failed: {facts.sample_error}"
    sample = facts.sample
    if sample is None:
        return None
    node = " (the primary only)" if facts.cluster else ""
    if sample.complete:
        return f"keyspace: all {sample.walked:,} keys read{node} in {sample.seconds:.2f} s"
    share = sample.walked / sample.keyspace if sample.keyspace else 0.0
    return (
        f"keyspace sample: {sample.walked:,} of {sample.keyspace:,} keys "
        f"({share * 100:.2g} %){node} in {sample.seconds:.2f} s"
        + (f"; {sample.stopped}" if sample.stopped else "")
    )


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
) -> tuple[dict[str, list[str]], str | None]:
    """Alert -> evidence lines, for the alerts whose own expression holds in Prometheus now;
    and the error that stopped the questions, if one did."""
    if prometheus is None:
        return {}, None
    seen: dict[str, list[str]] = {}
    try:
        # An expression that yields nothing rules its alert out only if Prometheus has the
        # series at all: one that scrapes no exporter would clear every alert.
        if not prometheus.query(f"count({names.REDIS_UP})"):
            raise PrometheusError(f"it has no {names.REDIS_UP} series: it scrapes no exporter")
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
        return seen, str(exc)
    return seen, None
