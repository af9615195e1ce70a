"""The vocabulary of a diagnosis: a hypothesis (one alert's question, its check, its runbook's
mitigation), what a check finds, and the report that ranks the causes.

A report keeps three kinds of findings apart: **causes** (wrong now, explained by nothing else
found), **symptoms** (wrong now, along a declared edge of `memorywatch.causality` from a cause
that was found) and **risks** (the configuration, nothing lost yet). It also says, for every
hypothesis, whether it was checked, why not when it was not, and whether that leaves the run
incomplete."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from memorywatch.diagnose.facts import Facts
from memorywatch.thresholds import Thresholds

EXIT_CLEAN: Final = 0
"""Every hypothesis the given sources answer was checked; none holds (risks may be listed)."""
EXIT_CAUSES: Final = 1
"""At least one cause is wrong now."""
EXIT_UNCHECKED: Final = 2
"""Could not check: Redis did not answer, or the command was given bad input."""
EXIT_INCOMPLETE: Final = 3
"""No cause among what was checked, but something the given sources should answer could not
be checked (a refused command, the sample's budget): not an all-clear."""

FOUND: Final = "found"
RULED_OUT: Final = "ruled out"
NEEDS_PROMETHEUS: Final = "needs prometheus"
"""The question needs history (a rate, a restart, the exporter's own state): only Prometheus
answers it, and it was not given. Listed, never counted against a clean result."""
COULD_NOT_CHECK: Final = "could not check"
"""The sources given should answer it and did not: the run is incomplete."""


class CannotTell(Exception):
    """Raised by a check whose facts could not be read although the source was given (a
    refused CONFIG or SLOWLOG, a sample that ran out of time): the message says which."""


class NeedsHistory(Exception):
    """Raised by a check that only Prometheus can answer for this target (the message says
    why), e.g. how many replicas a standalone master had an hour ago."""


@dataclass(frozen=True)
class Finding:
    """What a check saw: a one-line summary and its evidence, in numbers, never ids.
    ``excess`` is how far past its threshold (1.0 = at it): the tie-breaker of the ranking."""

    summary: str
    evidence: tuple[str, ...]
    excess: float = 1.0
    severity: str | None = None
    """The severity of the threshold it crossed, when the alert has two (warning, critical)."""
    mitigation: str | None = None
    """A mitigation more precise than the hypothesis's, from what was measured (the key
    class that holds the memory)."""


Check = Callable[[Facts, Thresholds], Finding | None]


@dataclass(frozen=True)
class Hypothesis:
    """One alert's question, answered from the live Redis by ``check``. The order of the
    hypotheses is the prior: root causes before the symptoms they bring along."""

    alert: str
    question: str
    mitigation: str
    check: Check | None
    """None: Redis alone cannot tell (a restart, a master change, a rate need history); only
    the alert's own expression in Prometheus answers it."""


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
    explained_by: str | None = None
    """For a symptom: the cause found in the same run that brings it along."""
    because: str | None = None
    """For a symptom: how (the causality table's line)."""

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "alert": self.alert,
            "severity": self.severity,
            "summary": self.summary,
            "evidence": list(self.evidence),
            "mitigation": self.mitigation,
            "runbook": self.runbook,
            "source": self.source,
        }
        if self.explained_by is not None:
            out["explained_by"] = self.explained_by
            out["because"] = self.because
        return out


@dataclass(frozen=True)
class Checked:
    alert: str
    question: str
    outcome: str
    """``found``, ``ruled out``, ``needs prometheus`` or ``could not check``."""
    reason: str | None = None
    """Why it was not checked, for the last two."""


@dataclass
class Report:
    target: str
    causes: list[Cause] = field(default_factory=list)
    symptoms: list[Cause] = field(default_factory=list)
    risks: list[Cause] = field(default_factory=list)
    checked: list[Checked] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    sample: str | None = None
    """What the keyspace sample covered, in one line (None: no sample was taken)."""
    unreachable: bool = False
    elapsed: float = 0.0

    def rank(self, alert: str) -> int | None:
        """1 when ``alert`` is the most likely cause, None when it is not among them."""
        return next((n for n, c in enumerate(self.causes, 1) if c.alert == alert), None)

    def outcome(self, outcome: str) -> list[Checked]:
        return [c for c in self.checked if c.outcome == outcome]

    @property
    def incomplete(self) -> bool:
        return bool(self.outcome(COULD_NOT_CHECK))

    @property
    def exit_code(self) -> int:
        if self.unreachable:
            return EXIT_UNCHECKED
        if self.causes:
            return EXIT_CAUSES
        return EXIT_INCOMPLETE if self.incomplete else EXIT_CLEAN

    @property
    def verdict(self) -> str:
        """One line: what the exit code means for this run."""
        if self.unreachable:
            return "could not check Redis"
        if self.causes:
            return f"{len(self.causes)} cause{'s' if len(self.causes) > 1 else ''} found"
        if self.incomplete:
            return (
                f"no cause found, but incomplete: {len(self.outcome(COULD_NOT_CHECK))} "
                "hypotheses could not be checked"
            )
        return "no cause found"

    def verdict_on(self, alert: str) -> str:
        """What became of ``alert`` (the paged one): a cause and its rank, a consequence of a
        cause found (along the causality table), a risk, ruled out, or why not checked."""
        rank = self.rank(alert)
        if rank is not None:
            return f"{alert}: found, cause {rank} of {len(self.causes)}"
        symptom = next((c for c in self.symptoms if c.alert == alert), None)
        if symptom is not None:
            return f"{alert}: found, a consequence of {symptom.explained_by}"
        if any(c.alert == alert for c in self.risks):
            return f"{alert}: found, a risk in the configuration (not the cause of an outage)"
        mine = next((c for c in self.checked if c.alert == alert), None)
        if mine is None:
            return f"{alert}: not checked"
        if mine.outcome == RULED_OUT:
            return f"{alert}: ruled out ({mine.question})"
        return f"{alert}: not checked: {mine.reason}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "verdict": self.verdict,
            "exit_code": self.exit_code,
            "causes": [c.as_dict() for c in self.causes],
            "symptoms": [c.as_dict() for c in self.symptoms],
            "risks": [c.as_dict() for c in self.risks],
            "checked": [{k: v for k, v in vars(c).items() if v is not None} for c in self.checked],
            "sample": self.sample,
            "errors": list(self.errors),
            "elapsed_seconds": round(self.elapsed, 3),
        }
