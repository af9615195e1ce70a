"""Replication and persistence (runbooks RedisReplicationLinkDown, RedisReplicaMissing,
RedisReplicationLagHigh, RedisReplicationLagBytesHigh, RedisPersistenceFailing)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from memorywatch.diagnose.checks._util import mib
from memorywatch.diagnose.facts import Facts
from memorywatch.diagnose.model import Finding, Hypothesis, NeedsHistory
from memorywatch.thresholds import Thresholds


def _replicas(info: Mapping[str, Any]) -> Iterator[Mapping[str, str]]:
    """The master's ``slaveN`` entries (state, offset, lag), without their addresses."""
    for n in range(int(float(info.get("connected_slaves", 0) or 0))):
        entry = info.get(f"slave{n}")
        if isinstance(entry, Mapping):
            yield entry


def link_down(facts: Facts, th: Thresholds) -> Finding | None:
    down = [
        n for n in facts.nodes if n.role == "slave" and n.info.get("master_link_status") != "up"
    ]
    syncing = [r for r in _replicas(facts.primary.info) if r.get("state") != "online"]
    if not down and not syncing:
        return None
    evidence = []
    for node in down:
        since = node.number("master_link_down_since_seconds", -1)
        evidence.append(
            f"a replica's master_link_status is {node.info.get('master_link_status')}"
            + (f" for {since:,.0f} s" if since >= 0 else "")
            + f" (its master: {node.info.get('master_host')}:{node.info.get('master_port')})"
        )
    if syncing:
        evidence.append(f"{len(syncing)} replicas of the master are not online (syncing)")
    if facts.unreachable:
        evidence.append(f"{len(facts.unreachable)} nodes the topology names do not answer")
    return Finding(
        "A replica has lost its master: it serves stale memory and cannot take over.",
        tuple(evidence),
    )


def replica_missing(facts: Facts, th: Thresholds) -> Finding | None:
    """A replica the topology names (Sentinel's, the Cluster's) that does not answer; a
    standalone target names none, so only the count's history can tell."""
    if facts.unreachable:
        return Finding(
            "A replica the topology names does not answer: one failure away from no failover "
            "target.",
            (f"{len(facts.unreachable)} of {len(facts.nodes) + len(facts.unreachable)} nodes "
             "the topology names do not answer",
             f"the master has {facts.primary.number('connected_slaves'):.0f} connected replicas"),
        )  # fmt: skip
    if len(facts.nodes) > 1:
        return None  # every node discovery named answered
    raise NeedsHistory(
        "a standalone target names no replicas: how many it had needs Prometheus's history"
    )


def lag_seconds(facts: Facts, th: Thresholds) -> Finding | None:
    warning = th["replica_lag_warning"].number()
    lags = [float(r.get("lag", 0) or 0) for r in _replicas(facts.primary.info)]
    behind = [lag for lag in lags if lag >= warning]
    if not behind:
        return None
    return Finding(
        f"A replica has not acknowledged for {max(behind):,.0f} s: a failover now loses writes.",
        (f"{len(behind)} of {len(lags)} replicas lag {warning:,.0f} s or more "
         f"(worst {max(behind):,.0f} s)",),
        excess=max(behind) / warning,
        severity="critical" if max(behind) >= th["replica_lag_critical"].number() else "warning",
    )  # fmt: skip


def lag_bytes(facts: Facts, th: Thresholds) -> Finding | None:
    limit = th["replica_lag_bytes"].number()
    offset = facts.primary.number("master_repl_offset")
    gaps = [offset - float(r.get("offset", 0) or 0) for r in _replicas(facts.primary.info)]
    behind = [gap for gap in gaps if gap >= limit]
    if not behind:
        return None
    return Finding(
        "A replica is far behind in bytes: what a failover would lose now.",
        (f"worst replica {mib(max(behind))} behind the master (threshold {mib(limit)})",),
        excess=max(behind) / limit,
    )


def persistence(facts: Facts, th: Thresholds) -> Finding | None:
    node = facts.primary
    failing = [
        field
        for field in (
            "rdb_last_bgsave_status",
            "aof_last_write_status",
            "aof_last_bgrewrite_status",
        )
        if node.info.get(field) not in (None, "ok")
    ]
    if not failing:
        return None
    return Finding(
        "Redis cannot persist to disk: a restart now loses every turn since the last save.",
        (
            *(f"{field}:{node.info.get(field)}" for field in failing),
            f"rdb_changes_since_last_save {node.number('rdb_changes_since_last_save'):,.0f}",
        ),
    )


HYPOTHESES = (
    Hypothesis(
        "RedisReplicationLinkDown",
        "Is a replica cut off from its master?",
        "Fix the replica's link (replicaof, masterauth, network); until then do not fail over "
        "to it.",
        link_down,
    ),
    Hypothesis(
        "RedisReplicationLagHigh",
        "Is a replica lagging in seconds?",
        "Find what slows the replica (CPU, a frozen process, network); durable mode refuses "
        "writes while it lags.",
        lag_seconds,
    ),
    Hypothesis(
        "RedisReplicationLagBytesHigh",
        "Is a replica far behind in bytes?",
        "As for lag in seconds; raise repl-backlog-size so a reconnect avoids a full resync.",
        lag_bytes,
    ),
    Hypothesis(
        "RedisPersistenceFailing",
        "Does the last RDB save or AOF write fail?",
        "Free or grow the disk, fix the directory's permissions, vm.overcommit_memory=1; then "
        "BGSAVE and check rdb_last_bgsave_status:ok.",
        persistence,
    ),
    Hypothesis(
        "RedisReplicaMissing",
        "Has a replica gone missing?",
        "Bring the replica back (its process, its replicaof, the network); until then a "
        "failover has fewer targets and durable mode may refuse writes.",
        replica_missing,
    ),
)
