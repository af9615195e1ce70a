"""Tools, locks and agent state (runbooks AgentToolOrphaned, AgentToolStuckInProgress,
AgentToolDuplicateExecution,
AgentLockHeldNearTTL, AgentLockLost, AgentStateMisses, AgentStateNotDurable).

Counters read from Redis count since the fleet's first write: without Prometheus a diagnosis
cannot tell an old loss from a new one, so it reports them with that caveat."""

from __future__ import annotations

from memorywatch import schema
from memorywatch.diagnose.checks._util import by_name, counter, fleet_of, pct, seconds
from memorywatch.diagnose.facts import Facts
from memorywatch.diagnose.model import Finding, Hypothesis
from memorywatch.thresholds import Thresholds

SINCE = "since the fleet's counters began"


def orphaned(facts: Facts, th: Thresholds) -> Finding | None:
    """Claims whose holder's heartbeat is gone: the side effect may or may not have happened,
    and at the claim's deadline a retry reclaims it and runs the tool again."""
    dead = [c for c in fleet_of(facts).tool_claims if not c.holder_alive]
    if not dead:
        return None
    tools: dict[str, float] = {}
    for claim in dead:
        tools[claim.tool] = tools.get(claim.tool, 0) + 1
    deadlines = [c.reclaim_in for c in dead if c.reclaim_in is not None]
    evidence = [
        f"{len(dead)} tool calls in progress whose holder sends no heartbeat: {by_name(tools)}; "
        f"oldest claimed {seconds(max(c.age for c in dead))} ago",
    ]
    if deadlines:
        soonest = min(deadlines)
        evidence.append(
            f"a retry may reclaim and run one again in {seconds(soonest)} (its deadline)"
            if soonest > 0
            else f"{sum(1 for d in deadlines if d <= 0)} are past their deadline: the next "
            "retry reclaims and runs them again"
        )
    return Finding(
        "A tool call's holder died mid-call: whether its side effect happened is unknown.",
        tuple(evidence),
        excess=2.0 + len(dead),
        mitigation="Check in the external system (payment, email, ticket) whether the call "
        "happened, by the idempotency key the SDK passed (ctx.idempotency_key), before the "
        "deadline lets a retry run it again; then let the retry run or record the outcome.",
    )


def stuck_tools(facts: Facts, th: Thresholds) -> Finding | None:
    limit = th["tool_stuck_in_progress"].number()
    stuck = [c for c in fleet_of(facts).tool_claims if c.age >= limit]
    if not stuck:
        return None
    dead = [c for c in stuck if not c.holder_alive]
    tools: dict[str, float] = {}
    for claim in stuck:
        tools[claim.tool] = tools.get(claim.tool, 0) + 1
    evidence = [
        f"{len(stuck)} tool calls in progress for more than {limit:,.0f} s "
        f"(oldest {max(c.age for c in stuck):,.0f} s): {by_name(tools)}",
        f"{len(dead)} of their holders send no heartbeat (the instance died holding the claim)",
    ]
    return Finding(
        "Tool calls are stuck in progress: retries of them are refused until the deadline.",
        tuple(evidence),
        excess=1.0 + len(dead),
    )


def duplicates(facts: Facts, th: Thresholds) -> Finding | None:
    fleet_of(facts)
    ran_twice = counter(facts, schema.FAMILY_TOOL_DUPLICATE_EXECUTIONS)
    if not ran_twice:
        return None
    reclaims = counter(facts, schema.FAMILY_TOOL_RECLAIMS)
    evidence = [f"side effects run twice {SINCE}: {by_name(ran_twice)}"]
    if reclaims:
        evidence.append(f"claims taken over after their deadline: {by_name(reclaims)}")
    return Finding(
        "A tool outlived its deadline, another caller reclaimed it: the side effect ran twice.",
        tuple(evidence),
        excess=1.0 + sum(ran_twice.values()),
    )


def lock_near_ttl(facts: Facts, th: Thresholds) -> Finding | None:
    share = th["lock_held_ttl_share"].number()
    near = [
        lease
        for lease in fleet_of(facts).oldest_locks
        if lease.lease and lease.held / lease.lease >= share
    ]
    if not near:
        return None
    worst = max(near, key=lambda lease: lease.held / lease.lease)
    return Finding(
        "A lock is about to expire under its holder: a lost lock and overlapping work next.",
        (f"{len(near)} lock kinds held for {pct(share)} or more of their TTL; worst: "
         f"{worst.label} held {worst.held:.1f} s of {worst.lease:.0f} s",),
        excess=worst.held / worst.lease / share,
    )  # fmt: skip


def locks_lost(facts: Facts, th: Thresholds) -> Finding | None:
    fleet_of(facts)
    lost = counter(facts, schema.FAMILY_LOCKS_LOST)
    if not lost:
        return None
    return Finding(
        "Locks expired under their holders: two instances may have done the same work.",
        (f"releases that found the lock gone {SINCE}: {by_name(lost)}",),
        excess=1.0 + sum(lost.values()),
    )


def state_misses(facts: Facts, th: Thresholds) -> Finding | None:
    fleet_of(facts)
    misses = counter(facts, schema.FAMILY_STATE_MISSES)
    if not misses:
        return None
    return Finding(
        "Agents found state gone that the index says is live: users were forgotten.",
        (f"state misses {SINCE}: {by_name(misses)}",),
        excess=1.0 + sum(misses.values()),
    )


def not_durable(facts: Facts, th: Thresholds) -> Finding | None:
    fleet_of(facts)
    refused = counter(facts, schema.FAMILY_STATE_NOT_DURABLE)
    if not refused:
        return None
    replicas = facts.primary.number("connected_slaves")
    return Finding(
        "Durable-mode writes were refused: too few replicas acknowledged them in time.",
        (f"refused {SINCE}: {by_name(refused)}",
         f"the master has {replicas:.0f} connected replicas now"),
        excess=1.0 + sum(refused.values()),
    )  # fmt: skip


HYPOTHESES = (
    Hypothesis(
        "AgentToolOrphaned",
        "Did a tool call's holder die mid-call (outcome unknown)?",
        "Check the side effect in the external system by its idempotency key before the "
        "claim's deadline lets a retry run it again.",
        orphaned,
    ),
    Hypothesis(
        "AgentToolDuplicateExecution",
        "Did a tool's side effect run twice?",
        "Raise the tool's deadline above its slowest run (or renew=True), hand "
        "ctx.idempotency_key to the external API, and reconcile the duplicated side effects.",
        duplicates,
    ),
    Hypothesis(
        "AgentToolStuckInProgress",
        "Is a tool call stuck in progress, its holder dead?",
        "Find why the holder died or hangs; the claim frees itself at its deadline, or delete "
        "the record after checking the side effect did not happen.",
        stuck_tools,
    ),
    Hypothesis(
        "AgentLockLost",
        "Did a lock expire under its holder?",
        "Give the lock a TTL above the work it guards (or renew=True) and check what the "
        "overlapping holders wrote, by fencing token.",
        locks_lost,
    ),
    Hypothesis(
        "AgentLockHeldNearTTL",
        "Is a lock held close to its TTL?",
        "Find the slow holder (the lock kind's tool or turn); extend the lease or raise its TTL.",
        lock_near_ttl,
    ),
    Hypothesis(
        "AgentStateNotDurable",
        "Are durable-mode writes being refused?",
        "Bring the replicas back (replication link, lag) or lower min_replicas to the replicas "
        "there are; refused calls failed for their users and may be retried.",
        not_durable,
    ),
    Hypothesis(
        "AgentStateMisses",
        "Did agents find live state gone?",
        "Find what removed it: evictions (AgentStateEvicted), a restart without persistence, "
        "or a TTL shorter than the session.",
        state_misses,
    ),
)
