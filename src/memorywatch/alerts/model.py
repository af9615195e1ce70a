"""What an alert group module builds: rules, their probes, and the config they read.

A `Probe` is the evidence half of an alert: input series that make the expression true from a
known step on (``ONSET``), series that sit exactly on the threshold and must not fire, the
labels the expression yields, and the ``$value`` it yields. The promtool tests are generated
from it, so a rule and its test come from the same threshold.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final, Literal

from memorywatch.scope import Scope
from memorywatch.thresholds import Threshold, Thresholds

DEFAULT_RUNBOOK_BASE_URL: Final = "https://github.com/memorywatch/memorywatch/blob/main/runbooks/"
DEFAULT_DASHBOARD_BASE_URL: Final = "http://localhost:3000/d/"
DEFAULT_EXPORTER_JOB: Final = "memorywatch"

DASHBOARD_OVERVIEW: Final = "memorywatch-overview"
DASHBOARD_LOCKS_TOOLS: Final = "memorywatch-locks-tools"
DASHBOARD_REDIS: Final = "memorywatch-redis"

ONSET: Final = 5
"""Probe series are healthy for steps 0..ONSET-1 and show the fault from step ONSET on."""

TEST_INSTANCE: Final = "127.0.0.1:9121"
TEST_CLUSTERS: Final = ("a", "b")
"""With a cluster label, the promtool tests hold two clusters with the same instance and job:
the first shows each probe's fault, the second sits on the threshold."""

ValueFormat = Literal["percentage", "duration", "bytes", "number", "count"]


@dataclass(frozen=True)
class AlertsConfig:
    thresholds: Thresholds = field(default_factory=Thresholds)
    runbook_base_url: str = DEFAULT_RUNBOOK_BASE_URL
    dashboard_base_url: str = DEFAULT_DASHBOARD_BASE_URL
    exporter_job: str = DEFAULT_EXPORTER_JOB
    scope: Scope = field(default_factory=Scope)
    """The cluster label every rule keeps and the selector every metric gets (default:
    neither, one Prometheus per cluster)."""

    def __post_init__(self) -> None:
        job = dict(self.scope.selector).get("job", self.exporter_job)
        if job != self.exporter_job:
            raise ValueError(
                f"the selector's job {job} is not the exporter job {self.exporter_job}"
            )

    def t(self, name: str) -> Threshold:
        return self.thresholds[name]

    @property
    def test_interval(self) -> int:
        """Seconds between samples in the promtool tests: every ``for`` is a whole number of them."""
        return math.gcd(60, *(t.for_seconds or 0 for t in self.thresholds))


@dataclass(frozen=True)
class Series:
    """``before`` until ONSET, then ``after`` growing by ``step`` per interval (a counter)."""

    before: float | None
    """None: the series does not exist before ONSET."""
    after: float
    step: float = 0.0
    ramp: bool = False
    """Grows by ``step`` from step 0 (from ``before``), not only from ONSET."""

    def values(self, steps_after_onset: int) -> str:
        # promtool: "axN" is N+1 samples, "_xN" is N blanks.
        if self.ramp:
            total = ONSET + max(steps_after_onset, 1)
            return f"{_num(self.before or 0)}+{_num(self.step)}x{total}"
        head = f"_x{ONSET}" if self.before is None else f"{_num(self.before)}x{ONSET - 1}"
        return f"{head} {_num(self.after)}+{_num(self.step)}x{max(steps_after_onset, 1)}"


def gauge(before: float, after: float) -> Series:
    return Series(before, after)


def counter(per_step: float) -> Series:
    """A counter at 0 that grows by ``per_step`` every interval from ONSET on."""
    return Series(0, per_step, per_step)


ValueAt = Callable[[int, int], float]
"""(steps since onset, interval in seconds) -> the expression's value then."""


def constant(value: float) -> ValueAt:
    return lambda _steps, _interval: value


def increase_of(per_step: float, window_seconds: int = 300) -> ValueAt:
    """``increase(x[window])`` of a `counter` (exact: the window starts on a sample or at 0)."""
    return lambda steps, interval: per_step * min(steps + 1, window_seconds // interval)


@dataclass(frozen=True)
class Probe:
    fire: Mapping[str, Series]
    """Series selector (``metric{a="b"}``, without instance/job) -> series that fire."""
    quiet: Mapping[str, Series]
    """Series exactly on (or just inside) the threshold: must not fire."""
    labels: Mapping[str, str]
    """Labels of the resulting alert besides instance, job, alertname and severity."""
    value: ValueAt
    """``$value`` of the firing series."""
    quiet_value: ValueAt
    """``$value`` of the quiet series (seen when a weaker rule of the same name fires on them)."""


@dataclass(frozen=True)
class AlertRule:
    alert: str
    expr: str
    threshold: Threshold
    summary: str
    description: str
    """Text with ``$value`` and ``$labels.NAME`` placeholders, rendered as a Go template."""
    value_format: ValueFormat
    dashboard: str
    probe: Probe

    @property
    def severity(self) -> str:
        return self.threshold.severity

    @property
    def for_seconds(self) -> int:
        return self.threshold.for_seconds or 0


@dataclass(frozen=True)
class RecordingRule:
    record: str
    expr: str


@dataclass(frozen=True)
class RuleGroup:
    name: str
    alerts: tuple[AlertRule, ...] = ()
    records: tuple[RecordingRule, ...] = ()


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def series_selector(metric: str, **labels: str) -> str:
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return f"{metric}{{{inner}}}" if inner else metric


# Descriptions ---------------------------------------------------------------------------------

_PLACEHOLDER: Final = re.compile(r"\$value|\$labels\.([a-z_]+)")

_GO_FORMAT: Final[dict[str, str]] = {
    "percentage": "{{ $value | humanizePercentage }}",
    "duration": "{{ $value | humanizeDuration }}",
    "bytes": "{{ $value | humanize1024 }}B",
    "number": "{{ $value | humanize }}",
    "count": '{{ $value | printf "%.0f" }}',
}


def go_template(description: str, value_format: ValueFormat) -> str:
    def sub(match: re.Match[str]) -> str:
        if match.group(1):
            return "{{ $labels." + match.group(1) + " }}"
        return _GO_FORMAT[value_format]

    return _PLACEHOLDER.sub(sub, description)
