"""Small constructors the alert group modules share."""

from __future__ import annotations

from collections.abc import Mapping

from memorywatch.alerts.model import (
    AlertRule,
    AlertsConfig,
    Probe,
    Series,
    ValueFormat,
    constant,
    counter,
    gauge,
    increase_of,
    series_selector,
)
from memorywatch.thresholds import Threshold

WINDOW = "5m"
WINDOW_SECONDS = 300


def alert(
    cfg: AlertsConfig,
    threshold: str,
    *,
    expr: str,
    summary: str,
    description: str,
    value_format: ValueFormat,
    dashboard: str,
    probe: Probe,
) -> AlertRule:
    t = cfg.t(threshold)
    return AlertRule(
        alert=t.alert,
        expr=expr,
        threshold=t,
        summary=summary,
        description=description,
        value_format=value_format,
        dashboard=dashboard,
        probe=probe,
    )


def num(value: float) -> str:
    """A threshold as PromQL writes it (no trailing .0)."""
    return f"{value:.15g}"


def any_increase_probe(
    cfg: AlertsConfig, threshold: str, metric: str, labels: Mapping[str, str]
) -> Probe:
    """For ``increase(metric[5m]) > value``: a counter that passes the value at ONSET and one
    that reaches exactly the value at the ``for`` boundary."""
    t = cfg.t(threshold)
    window_steps = WINDOW_SECONDS // cfg.test_interval
    steps = min((t.for_seconds or 0) // cfg.test_interval + 1, window_steps)
    per_step = t.number() + 1
    selector = series_selector(metric, **labels)
    return Probe(
        fire={selector: counter(per_step)},
        quiet={selector: counter(t.number() / steps)},
        labels=labels,
        value=increase_of(per_step, WINDOW_SECONDS),
        quiet_value=increase_of(t.number() / steps, WINDOW_SECONDS),
    )


def condition_probe(
    selector: str, healthy: float, faulty: float, labels: Mapping[str, str] | None = None
) -> Probe:
    """For a condition without a value (``x == 0``): healthy, then faulty from ONSET."""
    return Probe(
        fire={selector: gauge(healthy, faulty)},
        quiet={selector: gauge(healthy, healthy)},
        labels=labels or {},
        value=constant(faulty),
        quiet_value=constant(healthy),
    )


def above_probe(
    selector: str,
    threshold: Threshold,
    fire_level: float,
    labels: Mapping[str, str] | None = None,
    healthy: float = 0,
    extra: Mapping[str, Series] | None = None,
) -> Probe:
    """For ``gauge > value``: ``fire_level`` fires, the threshold itself must not."""
    return Probe(
        fire={selector: gauge(healthy, fire_level), **(extra or {})},
        quiet={selector: gauge(healthy, threshold.number()), **(extra or {})},
        labels=labels or {},
        value=constant(fire_level),
        quiet_value=constant(threshold.number()),
    )


RATIO_STEP = 100
"""Denominator events per evaluation step in the probes of ratio-of-counters alerts."""


def ratio_probe(
    numerator: str,
    denominator: str,
    threshold: Threshold,
    fire_level: float,
    labels: Mapping[str, str],
) -> Probe:
    """For ``increase(a) / increase(b) > ratio``: both counters rise every step, ``a`` at
    ``fire_level`` times ``b``; at the threshold ratio itself it must not fire."""
    fire = round(fire_level * RATIO_STEP)
    quiet = round(threshold.number() * RATIO_STEP)
    return Probe(
        fire={numerator: counter(fire), denominator: counter(RATIO_STEP)},
        quiet={numerator: counter(quiet), denominator: counter(RATIO_STEP)},
        labels=labels,
        value=constant(fire / RATIO_STEP),
        quiet_value=constant(quiet / RATIO_STEP),
    )


def fire_level(cfg: AlertsConfig, threshold: str, stricter: str | None = None) -> float:
    """A value above ``threshold`` and below its ``stricter`` partner, if any."""
    t = cfg.t(threshold)
    value = t.number()
    if stricter is not None:
        return (value + cfg.t(stricter).number()) / 2
    if t.unit == "ratio":
        return (value + 1) / 2
    return value * 2 if value else 1
