"""Redis down, restarting, read-only, out of memory, slow: a named exception, never a silent
success; readiness says so; the pool's exhaustion is counted."""

from __future__ import annotations

import threading

import pytest
import redis
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from harness import RedisServer, master_with_replica, redis_server, wait_until
from memorywatch.agent import (
    AgentState,
    PoolExhausted,
    StateOutOfMemory,
    StateReadOnly,
    StateUnavailable,
    ToolContext,
)
from memorywatch.agent import attributes as attr


def test_restart_mid_tool_raises_a_named_error_then_recovers() -> None:
    srv = RedisServer().start()
    try:
        state = AgentState.from_url(srv.url, namespace="rs", socket_timeout=2)
        state.history("s").append("user", "hi")

        def restarts_redis(ctx: ToolContext) -> str:
            srv.stop()
            return "side effect done"

        with pytest.raises(StateUnavailable, match=r"run_tool.complete: Redis unreachable"):
            state.run_tool("t", "k", restarts_redis)
        report = state.ready()
        assert not report.ready and not report.reachable and report.error
        with pytest.raises(StateUnavailable, match=r"history\.append"):
            state.history("s").append("user", "lost?")
        srv.start()
        wait_until(lambda: state.ready().ready, what="ready again after restart")
        # scripts are reloaded transparently after the restart flushed the script cache
        assert state.history("fresh").append("user", "back") == 1
        state.close()
    finally:
        srv.cleanup()


def test_read_only_replica_refuses_writes_by_name() -> None:
    with master_with_replica() as (_, replica):
        state = AgentState.from_url(replica.url, namespace="ro", check_schema=False)
        with pytest.raises(StateReadOnly, match=r"history\.append"):
            state.history("s").append("user", "hi")
        with pytest.raises(StateReadOnly):
            state.lock("l", ttl=1, wait=0)
        report = state.ready()
        assert report.reachable and not report.writable and not report.ready
        state.close()


def test_out_of_memory_refuses_writes_whole_and_reads_still_work() -> None:
    with redis_server("--maxmemory-policy", "noeviction") as srv:
        state = AgentState.from_url(srv.url, namespace="oom")
        h = state.history("s")
        h.append("user", "before the storm")
        raw = srv.client()
        raw.config_set("maxmemory", "1")  # every byte is over the limit now
        with pytest.raises(redis.exceptions.OutOfMemoryError):
            raw.set("probe", "x")
        with pytest.raises(StateOutOfMemory, match="out of memory"):
            h.append("user", "during")
        with pytest.raises(StateOutOfMemory):
            state.run_tool("t", "k", lambda ctx: "never runs")
        assert not raw.exists(state.schema.tool("k"))  # no half-written record
        assert [m["text"] for m in h.load()] == ["before the storm"]  # read-only script works
        report = state.ready()
        assert report.reachable and not report.writable and not report.ready
        raw.close()
        state.close()


def test_ready_respects_its_deadline(server: RedisServer, namespace: str) -> None:
    state = AgentState.from_url(server.url, namespace=namespace)
    assert state.ready().ready
    admin = server.client()
    admin.execute_command("CLIENT", "PAUSE", "5000", "WRITE")  # writes hang: a stalled Redis
    try:
        report = state.ready(deadline=0.2)
        assert not report.ready and "0.2" in (report.error or "")
    finally:
        admin.execute_command("CLIENT", "UNPAUSE")
        admin.close()
    wait_until(lambda: state.ready().ready, what="ready after unpause")
    state.close()


def test_pool_exhaustion_is_counted_and_heartbeated(server: RedisServer, namespace: str) -> None:
    reader = InMemoryMetricReader()
    state = AgentState.from_url(
        server.url,
        namespace=namespace,
        instance_id="busy-agent",
        max_connections=2,
        pool_timeout=0.05,
        meter_provider=MeterProvider(metric_readers=[reader]),
    )
    hold = threading.Event()
    errors: list[BaseException] = []

    def holder() -> None:
        state.client.blpop([f"{namespace}-never"], timeout=1)

    def worker() -> None:
        try:
            state.history("s").append("user", "hi")
        except BaseException as exc:
            errors.append(exc)

    holders = [threading.Thread(target=holder) for _ in range(2)]
    for t in holders:
        t.start()
    wait_until(lambda: state.pool_stats()["pool_in_use"] == 2, what="pool full")
    workers = [threading.Thread(target=worker) for _ in range(6)]
    for t in workers:
        t.start()
    for t in workers:
        t.join(5)
    hold.set()
    for t in holders:
        t.join(5)
    assert len(errors) == 6 and all(isinstance(e, PoolExhausted) for e in errors)
    stats = state.pool_stats()
    assert stats["pool_timeouts"] == 6 and stats["pool_max"] == 2
    state.heartbeat()
    beat = server.client().hgetall(state.schema.heartbeat("busy-agent"))
    assert beat["pool_timeouts"] == "6" and beat["pool_max"] == "2"

    data = reader.get_metrics_data()
    assert data is not None
    found = {
        m.name: [(dict(p.attributes or {}), p.value) for p in m.data.data_points]  # type: ignore[union-attr]
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        if m.name.startswith("db.client.connection")
        and m.name != attr.DB_CLIENT_CONNECTION_WAIT_TIME
    }
    pool_attr = {attr.DB_CLIENT_CONNECTION_POOL_NAME: f"memorywatch.{namespace}"}
    timeouts = found[attr.DB_CLIENT_CONNECTION_TIMEOUTS]
    assert [v for a, v in timeouts if a.items() >= pool_attr.items()] == [6]
    maxes = found[attr.DB_CLIENT_CONNECTION_MAX]
    assert [v for a, v in maxes if a == pool_attr] == [2]
    assert attr.DB_CLIENT_CONNECTION_PENDING_REQUESTS in found
    state.close()


def test_heartbeat_hash_ttl_and_index(server: RedisServer, namespace: str) -> None:
    from memorywatch import schema

    state = AgentState.from_url(server.url, namespace=namespace, instance_id="agent-9")
    thread = state.start_heartbeat(interval=0.05)
    wait_until(lambda: thread.beats >= 2, what="two heartbeats")
    state.stop_heartbeat()
    raw = server.client()
    beat = raw.hgetall(state.schema.heartbeat("agent-9"))
    assert beat["ready"] == "1"
    assert beat["sdk_version"] and beat["schema_version"] == str(schema.SCHEMA_VERSION)
    assert int(beat["pool_max"]) == 50 and int(beat["pool_in_use"]) >= 0
    assert 0 < raw.pttl(state.schema.heartbeat("agent-9")) <= schema.DEFAULT_HEARTBEAT_TTL * 1000
    now_ms = raw.time()[0] * 1000
    live = sum(
        raw.zcount(k, now_ms - schema.DEFAULT_HEARTBEAT_TTL * 1000, "+inf")
        for k in state.schema.instances_keys()
    )
    assert live == 1
    raw.close()
    state.close()
