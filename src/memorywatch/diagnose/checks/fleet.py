"""The agent fleet itself (runbooks AgentNoReadyInstances, AgentInstancesNotReady,
AgentQueueBacklog)."""

from __future__ import annotations

from memorywatch.diagnose.checks._util import fleet_of
from memorywatch.diagnose.facts import Facts
from memorywatch.diagnose.model import Finding, Hypothesis
from memorywatch.thresholds import Thresholds


def _has_fleet(facts: Facts) -> bool:
    """Agents have written here (the schema hash exists): a fleet is expected to beat."""
    return fleet_of(facts).version is not None


def no_ready(facts: Facts, th: Thresholds) -> Finding | None:
    if not _has_fleet(facts):
        return None
    assert facts.fleet is not None
    beats = facts.fleet.instances
    if any(beat.ready for beat in beats.values()):
        return None
    return Finding(
        "No agent instance is ready: every request behind the load balancer fails.",
        (f"{len(beats)} live instances (heartbeat within the window), 0 ready",),
        excess=2.0,
    )


def not_ready(facts: Facts, th: Thresholds) -> Finding | None:
    if not _has_fleet(facts):
        return None
    assert facts.fleet is not None
    beats = facts.fleet.instances
    down = [b for b in beats.values() if not b.ready]
    if not down or len(down) == len(beats):
        return None
    return Finding(
        "Some agent instances report not ready (their readiness check fails).",
        (f"{len(down)} of {len(beats)} live instances not ready",),
    )


def backlog(facts: Facts, th: Thresholds) -> Finding | None:
    fleet = fleet_of(facts)
    if not fleet.queues:
        return None
    limit = th["queue_per_ready_instance"].number()
    ready = sum(1 for beat in fleet.instances.values() if beat.ready)
    per = {q: s.length / max(1, ready) for q, s in fleet.queues.items()}
    behind = {q: v for q, v in per.items() if v >= limit}
    if not behind:
        return None
    worst = max(behind, key=lambda q: behind[q])
    return Finding(
        "Work queues back up faster than the ready instances drain them.",
        (f"queue {worst}: {fleet.queues[worst].length:,.0f} entries for {ready} ready "
         f"instances ({behind[worst]:,.0f} per instance, threshold {limit:,.0f})",),
        excess=behind[worst] / limit,
    )  # fmt: skip


HYPOTHESES = (
    Hypothesis(
        "AgentNoReadyInstances",
        "Is any agent instance ready?",
        "Check why readiness fails (state.ready().error on an instance: Redis unreachable, "
        "read-only, out of memory) and restart the instances once Redis answers.",
        no_ready,
    ),
    Hypothesis(
        "AgentQueueBacklog",
        "Do the work queues back up?",
        "Scale out the instances that drain the queue, or find why they are not ready.",
        backlog,
    ),
    Hypothesis(
        "AgentInstancesNotReady",
        "Are some instances not ready?",
        "Look at the not-ready instances' readiness error; replace crash-looping ones.",
        not_ready,
    ),
)
