"""The vocabulary of a diagnosis: a hypothesis (one alert's question, its check, its runbook's
mitigation), what a check finds, and the report that ranks the causes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from memorywatch.diagnose.facts import Facts
from memorywatch.thresholds import Thresholds


@dataclass(frozen=True)
class Finding:
    """What a check saw: a one-line summary and its evidence, in numbers, never ids.
    ``excess`` is how far past its threshold (1.0 = at it): the tie-breaker of the ranking."""

    summary: str
    evidence: tuple[str, ...]
    excess: float = 1.0
    severity: str | None = None
    """The severity of the threshold it crossed, when the alert has two (warning, critical)."""


Check = Callable[[Facts, Thresholds], Finding | None]


@dataclass(frozen=True)
class Hypothesis:
    """One alert's question, answered from the live Redis by ``check``. The order of the
    hypotheses is the prior: root causes before the symptoms they bring along."""

    alert: str
    question: str
    mitigation: str
    check: Check | None
    """None: Redis alone cannot tell (a restart, a master change need history); only the
    alert's own expression in Prometheus answers it."""


@dataclass(frozen=True)
class Cause:
    alert: str
    severity: str
    summary: str
    evidence: tuple[str, ...]
    mitigation: str
    runbook: str
    source: str
    """``redis``, ``prometheus`` or ``redis+prometheus``: who saw it."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "alert": self.alert,
            "severity": self.severity,
            "summary": self.summary,
            "evidence": list(self.evidence),
            "mitigation": self.mitigation,
            "runbook": self.runbook,
            "source": self.source,
        }


@dataclass(frozen=True)
class Checked:
    alert: str
    question: str
    outcome: str
    """``found``, ``ruled out``, or ``unknown``: the facts it needs could not be read (Redis
    down, or a question only Prometheus answers and no --prometheus-url)."""


@dataclass
class Report:
    target: str
    causes: list[Cause] = field(default_factory=list)
    checked: list[Checked] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    unreachable: bool = False
    elapsed: float = 0.0

    def rank(self, alert: str) -> int | None:
        """1 when ``alert`` is the most likely cause, None when it is not among them."""
        return next((n for n, c in enumerate(self.causes, 1) if c.alert == alert), None)

    @property
    def exit_code(self) -> int:
        """0 nothing wrong, 1 causes found, 2 could not check."""
        if self.unreachable:
            return 2
        return 1 if self.causes else 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "causes": [c.as_dict() for c in self.causes],
            "checked": [vars(c) for c in self.checked],
            "errors": list(self.errors),
            "elapsed_seconds": round(self.elapsed, 3),
        }
