"""Helpers of the agent tests: read fleet counters the way the exporter will."""

from __future__ import annotations

import redis

from memorywatch import schema


def counters(client: redis.Redis, namespace: str, family: str) -> dict[str, float]:
    """Read a counter family the way the exporter will: HGETALL per shard, merged."""
    sch = schema.Schema(namespace)
    return schema.merge_counters(client.hgetall(k) for k in sch.stats_keys(family))


def histograms(
    client: redis.Redis, namespace: str, family: str, buckets: tuple[float, ...]
) -> dict[str, schema.HistogramData]:
    sch = schema.Schema(namespace)
    return schema.merge_histograms((client.hgetall(k) for k in sch.stats_keys(family)), buckets)


def member(name: str, resource: str | None = None) -> str:
    """The held-lock index member of ``lock(name)`` or ``lock(name, resource)``."""
    from memorywatch.agent._locks import identity

    kind, lock_id = identity(name, resource)
    return schema.lock_member(kind, lock_id)
