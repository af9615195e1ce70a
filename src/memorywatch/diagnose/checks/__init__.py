"""The runbooks' diagnosis checks as code, one module per group of runbooks. ``HYPOTHESES`` is
in the order a diagnosis weighs them after severity: causes before the symptoms they bring
(an eviction before the misses it causes, a dead Redis before an unready fleet)."""

from __future__ import annotations

from typing import Final

from memorywatch.diagnose.checks import (
    clients,
    fleet,
    latency,
    memory,
    redis_health,
    replication,
)
from memorywatch.diagnose.checks import tools_locks as tl
from memorywatch.diagnose.model import Hypothesis

_ALL = {
    h.alert: h
    for h in (
        *redis_health.HYPOTHESES,
        *memory.HYPOTHESES,
        *latency.HYPOTHESES,
        *tl.HYPOTHESES,
        *clients.HYPOTHESES,
        *replication.HYPOTHESES,
        *fleet.HYPOTHESES,
    )
}
PRIOR: Final = (
    "RedisDown",
    "RedisRestartedWithoutPersistence",
    "AgentStateEvicted",
    "RedisWriteErrors",
    "RedisBusy",
    "RedisMasterChanged",
    "AgentToolOrphaned",
    "AgentToolDuplicateExecution",
    "AgentToolStuckInProgress",
    "AgentLockLost",
    "AgentClientPoolTimeouts",
    "RedisRejectedConnections",
    "RedisReplicationLinkDown",
    "RedisReplicaMissing",
    "RedisSlowCommands",
    "AgentNoReadyInstances",
    "AgentStateNotDurable",
    "AgentStateMisses",
    "RedisPersistenceFailing",
    "RedisMemoryHigh",
    "RedisFragmentationHigh",
    "AgentRecordsWithoutTTL",
    "RedisReplicationLagHigh",
    "RedisClientsNearMax",
    "AgentLockHeldNearTTL",
    "AgentClientPoolSaturated",
    "RedisEvictionPolicyUnsafe",
    "RedisMaxmemoryNotSet",
    "RedisReplicationLagBytesHigh",
    "AgentQueueBacklog",
    "AgentInstancesNotReady",
)
assert set(PRIOR) == set(_ALL), set(PRIOR) ^ set(_ALL)
HYPOTHESES: Final[tuple[Hypothesis, ...]] = tuple(_ALL[name] for name in PRIOR)
