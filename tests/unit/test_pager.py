"""The demo pager calls a paged alert "a consequence of" another only when the diagnosis made
it a symptom (along an edge of causality.py), says when it is a risk, and ranks it otherwise."""

from __future__ import annotations

from memorywatch.demo.pager import summary
from memorywatch.diagnose.model import Cause, Checked, Report


def _cause(alert: str, explained_by: str | None = None) -> Cause:
    return Cause(
        alert, "critical", f"{alert} seen.", (f"{alert} evidence",), "Fix it.", "", "redis",
        explained_by,
    )  # fmt: skip


def _report() -> Report:
    return Report(
        target="redis://127.0.0.1:6379",
        causes=[_cause("AgentStateEvicted"), _cause("AgentToolDuplicateExecution")],
        symptoms=[_cause("AgentStateMisses", "AgentStateEvicted")],
        risks=[_cause("RedisEvictionPolicyUnsafe")],
        checked=[Checked("AgentLockLost", "Did a lock expire under its holder?", "ruled out")],
    )


def test_a_symptom_is_a_consequence_of_the_cause_that_explains_it() -> None:
    lines = summary(_report(), "AgentStateMisses")
    assert lines[0].endswith("most likely AgentStateEvicted: AgentStateEvicted seen.")
    assert lines[-1] == "  AgentStateMisses: found, a consequence of AgentStateEvicted"


def test_a_cause_found_alongside_is_ranked_not_called_a_consequence() -> None:
    lines = summary(_report(), "AgentToolDuplicateExecution")
    assert lines[-1] == "  AgentToolDuplicateExecution: found, cause 2 of 2"


def test_a_risk_is_said_to_be_one() -> None:
    lines = summary(_report(), "RedisEvictionPolicyUnsafe")
    assert "a risk in the configuration" in lines[-1]
    only_risks = Report(target="x", risks=[_cause("RedisMaxmemoryNotSet")])
    lines = summary(only_risks, "RedisMaxmemoryNotSet")
    assert lines[0].startswith("diagnose --alert RedisMaxmemoryNotSet: no cause found")
    assert "a risk in the configuration" in lines[1]


def test_a_paged_alert_ruled_out_says_so() -> None:
    assert summary(_report(), "AgentLockLost")[-1].startswith("  AgentLockLost: ruled out")
