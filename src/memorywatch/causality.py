"""Which alert explains which: the one table of cause -> symptom edges, and the alerts that are
risks in the configuration rather than something wrong now.

Two consumers read it, so they cannot disagree:

- `memorywatch diagnose` says "a consequence of X" only along an edge here, and ranks a
  finding explained by another finding below it (a symptom, not a cause);
- `alerts/alertmanager.yaml` is generated from it: while a cause fires, Alertmanager inhibits
  the symptoms it brings along, so one incident pages once.

An edge is drawn only where the cause, once firing, makes the symptom expected: an eviction
explains misses and lost locks; it does not explain a tool that ran twice (that one is
reconciled by hand whatever the cause, so it is never silenced).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True)
class Edge:
    cause: str
    symptoms: tuple[str, ...]
    why: str
    """One line: how the cause brings the symptoms along (shown in diagnose's output)."""


EDGES: Final[tuple[Edge, ...]] = (
    Edge(
        "RedisDown",
        ("AgentNoReadyInstances", "AgentInstancesNotReady", "AgentQueueBacklog",
         "AgentClientPoolTimeouts", "AgentClientPoolSaturated", "AgentLockTimeouts",
         "AgentStateNotDurable", "RedisReplicationLinkDown", "RedisReplicaMissing",
         "RedisExporterScrapeErrors", "AgentToolOrphaned", "AgentToolStuckInProgress",
         # the exporter's eviction subscription is a connection to Redis: it drops with it
         "AgentEvictionTrackingDisabled"),
        "with Redis down no instance can read or write, so readiness, pools, locks, queues, "
        "the replicas' link and the exporter's eviction subscription all fail behind it",
    ),
    Edge(
        "RedisRestartedWithoutPersistence",
        ("AgentStateMisses", "RedisMasterChanged", "AgentInstancesNotReady"),
        "a master that came back empty has lost every history: agents miss state they "
        "indexed, and the new run_id reads as a master change",
    ),
    Edge(
        "AgentStateEvicted",
        ("AgentStateMisses", "AgentLockLost", "RedisMemoryHigh", "RedisMemoryFullSoon",
         "AgentInstancesNotReady", "AgentNoReadyInstances"),
        "Redis evicts at maxmemory: the memory alerts are how it got there, and the misses, "
        "lost locks and instances read as gone (heartbeats carry TTLs too, until their next "
        "beat) are the keys it evicted",
    ),
    Edge(
        "RedisWriteErrors",
        ("RedisMemoryHigh", "RedisMemoryFullSoon", "AgentInstancesNotReady",
         "AgentNoReadyInstances", "AgentStateNotDurable"),
        "refused writes (OOM at maxmemory, READONLY, MISCONF) fail the instances' readiness "
        "and every durable write",
    ),
    Edge(
        "RedisBusy",
        ("RedisSlowCommands", "AgentClientPoolTimeouts", "AgentClientPoolSaturated",
         "AgentLockWaitHigh", "AgentLockTimeouts", "AgentLockHeldNearTTL",
         "AgentQueueBacklog", "AgentInstancesNotReady", "RedisReplicationLagHigh"),
        "every command queues behind Redis's one busy thread: connections stay checked out, "
        "locks wait and are held longer, queues drain slower",
    ),
    Edge(
        "RedisSlowCommands",
        ("AgentClientPoolTimeouts", "AgentClientPoolSaturated", "AgentLockWaitHigh",
         "AgentLockTimeouts", "AgentLockHeldNearTTL", "AgentQueueBacklog"),
        "while a slow command runs every other client waits: pools run dry and locks are "
        "held and waited for longer",
    ),
    Edge(
        "AgentToolOrphaned",
        ("AgentToolStuckInProgress", "AgentLockHeldNearTTL"),
        "a claim whose holder died stays in progress until its deadline: it is the stuck call",
    ),
    Edge(
        "RedisRejectedConnections",
        ("RedisClientsNearMax", "AgentClientPoolTimeouts", "AgentClientPoolSaturated",
         "AgentInstancesNotReady"),
        "Redis at maxclients refuses new connections: the pools that needed one time out",
    ),
    Edge(
        "AgentClientPoolTimeouts",
        ("AgentClientPoolSaturated", "AgentQueueBacklog", "AgentLockTimeouts",
         # its readiness probe waits for a pool connection like any other command
         "AgentInstancesNotReady"),
        "an instance whose pool ran dry is saturated by definition, drains its work slower, "
        "and fails its readiness probe, which needs a pool connection too",
    ),
    Edge(
        "AgentNoReadyInstances",
        ("AgentInstancesNotReady", "AgentQueueBacklog"),
        "with no instance ready nobody drains the queues",
    ),
    Edge(
        "RedisReplicationLinkDown",
        ("RedisReplicationLagHigh", "RedisReplicationLagBytesHigh", "AgentStateNotDurable",
         "RedisReplicaMissing"),
        "a replica cut off from its master falls behind and cannot acknowledge durable writes",
    ),
    Edge(
        "RedisReplicaMissing",
        ("AgentStateNotDurable",),
        "with a replica gone, durable writes cannot collect their acknowledgements",
    ),
    Edge(
        "RedisReplicationLagHigh",
        ("RedisReplicationLagBytesHigh", "AgentStateNotDurable"),
        "a lagging replica is behind in bytes too and acknowledges durable writes late",
    ),
    Edge(
        "RedisMemoryHigh",
        ("RedisMemoryFullSoon",),
        "memory near maxmemory is also forecast to reach it",
    ),
)  # fmt: skip

RISKS: Final = frozenset(
    {
        "RedisMaxmemoryNotSet",
        "RedisEvictionPolicyUnsafe",
        "AgentEvictionTrackingDisabled",
    }
)
"""Alerts about the configuration: nothing is lost yet, but the next incident will be worse.
A diagnosis lists them apart from what is wrong now and never ranks them as a cause."""


def explained_by() -> Mapping[str, tuple[str, ...]]:
    """Symptom -> the causes that explain it, in the table's order."""
    out: dict[str, list[str]] = {}
    for edge in EDGES:
        for symptom in edge.symptoms:
            out.setdefault(symptom, []).append(edge.cause)
    return {symptom: tuple(causes) for symptom, causes in out.items()}


def edge(cause: str) -> Edge | None:
    return next((e for e in EDGES if e.cause == cause), None)


def alerts_named() -> frozenset[str]:
    """Every alert the table names (a test checks each is an alert the pack ships)."""
    return frozenset({e.cause for e in EDGES} | {s for e in EDGES for s in e.symptoms} | RISKS)
