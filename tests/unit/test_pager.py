"""The demo pager calls a paged alert "a consequence of" another only along an edge of
causality.py; anything else found alongside is "independent"."""

from __future__ import annotations

from memorywatch.demo.pager import relation, summary
from memorywatch.diagnose.model import Cause, Report


def _report(*alerts: str) -> Report:
    causes = [
        Cause(alert, "critical", f"{alert} seen.", (f"{alert} evidence",), "Fix it.", "", "redis")
        for alert in alerts
    ]
    return Report(target="redis://127.0.0.1:6379", causes=causes)


def test_a_symptom_is_a_consequence_of_its_cause_along_an_edge() -> None:
    report = _report("AgentStateEvicted", "AgentStateMisses", "RedisEvictionPolicyUnsafe")
    assert relation(report, "AgentStateMisses") == "a consequence of AgentStateEvicted"
    lines = summary(report, "AgentStateMisses")
    assert lines[-1] == "  AgentStateMisses: cause 2 of 3, a consequence of AgentStateEvicted"


def test_an_alert_found_alongside_without_an_edge_is_independent() -> None:
    report = _report("AgentStateEvicted", "AgentStateMisses", "RedisEvictionPolicyUnsafe")
    assert relation(report, "RedisEvictionPolicyUnsafe") == "independent"
    assert summary(report, "RedisEvictionPolicyUnsafe")[-1].endswith("cause 3 of 3, independent")
    # an edge whose cause was not found says nothing either
    assert relation(_report("RedisDown", "AgentStateMisses"), "AgentStateMisses") == "independent"


def test_every_cause_found_that_explains_it_is_named() -> None:
    report = _report("RedisDown", "AgentClientPoolTimeouts", "AgentQueueBacklog")
    assert relation(report, "AgentQueueBacklog") == (
        "a consequence of RedisDown, AgentClientPoolTimeouts"
    )
