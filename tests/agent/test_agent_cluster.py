"""Redis Cluster: every script's keys hash to one slot, so all operations work unchanged."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis.asyncio.cluster
import redis.cluster
from agent_helpers import counters

from harness import LOOPBACK, RedisServer, redis_cluster
from memorywatch import schema
from memorywatch.agent import AgentState, LockLost, StateMiss, ToolContext, aio


@pytest.fixture(scope="module")
def cluster() -> Iterator[list[RedisServer]]:
    with redis_cluster(3) as nodes:
        yield nodes


@pytest.mark.slow
def test_every_operation_on_a_cluster(cluster: list[RedisServer]) -> None:
    client = redis.cluster.RedisCluster(host=LOOPBACK, port=cluster[0].port, decode_responses=True)
    state = AgentState(client, namespace="cl", instance_id="c-1")
    # subjects chosen to land on all three nodes
    tokens: dict[int, list[int]] = {}  # shard -> fencing tokens issued there, in order
    for i in range(12):
        h = state.history(f"session-{i}", user_id=f"user-{i % 3}")
        h.append("user", f"hello {i}")
        assert h.load()[0]["text"] == f"hello {i}"
        with state.turn(f"session-{i}"):
            pass
        with state.lock("order", str(i), ttl=5, wait=1) as lease:
            tokens.setdefault(state.schema.shard(lease.name), []).append(lease.fencing_token)
        assert state.run_tool("t", f"key-{i}", lambda ctx, i=i: i) == i
        assert state.run_tool("t", f"key-{i}", lambda ctx, i=i: -1) == i
        state.preferences(f"user-{i % 3}").set("n", i)
    assert all(seq == sorted(set(seq)) for seq in tokens.values()), tokens
    nodes_used = {client.keyslot(state.schema.history(f"session-{i}")) for i in range(12)}
    assert len(nodes_used) > 3
    client.delete(state.schema.history("session-3"))
    with pytest.raises(StateMiss):
        state.history("session-3").load()
    with pytest.raises(LockLost), state.lock("gone", ttl=5) as lease:
        client.delete(state.schema.lock("gone"))
    assert state.forget_user("user-0") > 0
    state.heartbeat()
    assert state.ready().ready

    # counters are read with HGETALL per shard key: RedisCluster routes each to its node
    def read(family: str) -> dict[str, float]:
        return counters(client, "cl", family)  # type: ignore[arg-type]

    assert read(schema.FAMILY_TOOL_EXECUTIONS) == {"t|completed": 12}
    assert read(schema.FAMILY_TOOL_DUPLICATES_SUPPRESSED) == {"t": 12}
    assert read(schema.FAMILY_LOCKS_LOST) == {"gone": 1}
    assert read(schema.FAMILY_LOCK_CONTENDED) == {}
    assert set(waits_by_kind(client)) == {"order", "gone"}
    assert read(schema.FAMILY_STATE_MISSES) == {"history": 1}
    waits = schema.merge_histograms(
        (client.hgetall(k) for k in state.schema.stats_keys(schema.FAMILY_LOCK_WAIT)),
        schema.LOCK_WAIT_BUCKETS,
    )
    assert sum(h.count for h in waits.values()) == 13  # one observation per acquisition
    client.close()


def waits_by_kind(client: redis.cluster.RedisCluster) -> dict[str, float]:
    sch = schema.Schema("cl", 16)
    waits = schema.merge_histograms(
        (client.hgetall(k) for k in sch.stats_keys(schema.FAMILY_LOCK_WAIT)),
        schema.LOCK_WAIT_BUCKETS,
    )
    return {kind: hist.count for kind, hist in waits.items()}


async def _async_cluster(port: int) -> None:
    client = redis.asyncio.cluster.RedisCluster(host=LOOPBACK, port=port, decode_responses=True)
    state = aio.AgentState(client, namespace="acl", instance_id="ac-1")
    for i in range(6):
        await state.history(f"s{i}").append("user", "hi")
        assert len(await state.history(f"s{i}").load()) == 1
        async with state.lock("l", f"r{i}", ttl=5) as lease:
            assert lease.fencing_token >= 1 and lease.label == "l"

        async def fn(ctx: ToolContext, i: int = i) -> int:
            return i

        assert await state.run_tool("t", f"k{i}", fn) == i
    assert (await state.ready()).ready
    await client.aclose()


def test_asyncio_on_a_cluster(cluster: list[RedisServer]) -> None:
    import asyncio

    asyncio.run(_async_cluster(cluster[0].port))
