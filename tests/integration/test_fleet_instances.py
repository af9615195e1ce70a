"""Agent instances without a label each: the pool figures of hundreds of heartbeats are
published as bounded aggregates plus the --top-instances most used pools, read server-side by
one script per shard. Heartbeats are written in the schema's layout (as the SDK's heartbeat
script writes them) so a test of 300 instances takes a fraction of a second."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis

from harness import RedisServer, redis_server
from memorywatch import names, schema
from memorywatch.agent._values import script_text
from memorywatch.exporter.collectors.fleet.read import (
    POOL_DISCOUNT_MAX,
    POOL_USE_BUCKETS,
    read_fleet,
)
from memorywatch.exporter.fleet_options import FleetOptions
from metrics import InProcessExporter, Scrape


@dataclass(frozen=True)
class Beat:
    instance_id: str
    ready: bool
    in_use: int
    pool_max: int
    timeouts: int


def fleet_of(n: int) -> list[Beat]:
    """n instances with pools of 50 at most 80 % used, every 7th not ready, every 10th with
    timeouts, and three worst pools at 100 %, 98 % and 96 %."""
    beats = [
        Beat(f"pod-{i:04d}", i % 7 != 0, (i * 13) % 41, 50, 2 if i % 10 == 0 else 0)
        for i in range(n)
    ]
    for rank, i in enumerate((n // 3, n // 2, n - 1)):
        beats[i] = Beat(beats[i].instance_id, True, 50 - rank, 50, beats[i].timeouts)
    return beats


HEARTBEAT = script_text("heartbeat")


def beat_args(layout: schema.Schema, beat: Beat, ttl_ms: int) -> list[Any]:
    """KEYS and ARGV of the SDK's heartbeat script (as `_health.heartbeat` passes them)."""
    keys = [
        layout.heartbeat(beat.instance_id),
        layout.instances_index(beat.instance_id),
        layout.pool_index(beat.instance_id),
        *layout.pool_aggregate_keys(beat.instance_id),
    ]
    fields = {
        schema.HEARTBEAT_READY: int(beat.ready),
        schema.HEARTBEAT_POOL_IN_USE: beat.in_use,
        schema.HEARTBEAT_POOL_MAX: beat.pool_max,
        schema.HEARTBEAT_POOL_TIMEOUTS: beat.timeouts,
    }
    return [len(keys), *keys, beat.instance_id, ttl_ms, *(x for f in fields.items() for x in f)]


def write_heartbeats(
    client: redis.Redis, beats: list[Beat], namespace: str, ttl_ms: int = 60_000
) -> None:
    """Each beat through the SDK's own heartbeat script (pipelined, so 300 take a fraction of
    a second)."""
    layout = schema.Schema(namespace, schema.STANDALONE_SHARDS)
    pipe = client.pipeline(transaction=False)
    for beat in beats:
        pipe.eval(HEARTBEAT, *beat_args(layout, beat, ttl_ms))
    pipe.execute()


@pytest.fixture
def server() -> Iterator[RedisServer]:
    with redis_server() as srv:
        yield srv


def _fleet(server: RedisServer, n: int, namespace: str) -> list[Beat]:
    layout = schema.Schema(namespace, schema.STANDALONE_SHARDS)
    server.client().hset(
        layout.schema_key(),
        mapping={
            schema.SCHEMA_FIELD_VERSION: schema.SCHEMA_VERSION,
            schema.SCHEMA_FIELD_SHARDS: schema.STANDALONE_SHARDS,
        },
    )
    beats = fleet_of(n)
    write_heartbeats(server.client(), beats, namespace)
    return beats


def scrape(server: RedisServer, namespace: str, **options: Any) -> Scrape:
    with InProcessExporter(redis_url=server.url, namespace=namespace, **options) as exporter:
        return exporter.scrape()


def _instance_labelled(result: Scrape) -> list[Any]:
    return [s for s in result.all_samples if names.LABEL_INSTANCE_ID in s.labels]


def test_series_count_is_independent_of_the_number_of_instances(server: RedisServer) -> None:
    _fleet(server, 10, "small")
    _fleet(server, 300, "large")
    small, large = scrape(server, "small"), scrape(server, "large")
    assert large.value(names.AGENT_POOL_USE_INSTANCES, le="+Inf") == 300
    assert small.value(names.AGENT_POOL_USE_INSTANCES, le="+Inf") == 10

    # redis_* of one Redis differ between the scrapes (commands run since), and so does what
    # the keyspace sampler found by then: the fleet's instance families are compared
    def fleet_series(result: Scrape) -> list[str]:
        return sorted(s.name for s in result.all_samples if s.name.startswith("memorywatch_agent_"))

    assert fleet_series(large) == fleet_series(small)
    for result in (small, large):
        labelled = _instance_labelled(result)
        assert {s.name for s in labelled} == {names.AGENT_POOL_TOP_USE}
        assert len(labelled) == 3


def test_aggregates_equal_the_heartbeats_and_top_k_names_the_worst(server: RedisServer) -> None:
    beats = _fleet(server, 300, "agg")
    result = scrape(server, "agg", top_instances=3)
    assert result.value(names.AGENT_INSTANCES, state="ready") == sum(b.ready for b in beats)
    assert result.value(names.AGENT_INSTANCES, state="not_ready") == sum(not b.ready for b in beats)
    ratios = [b.in_use / b.pool_max for b in beats]
    for le in POOL_USE_BUCKETS:
        assert result.value(names.AGENT_POOL_USE_INSTANCES, le=f"{le:g}") == sum(
            r <= le for r in ratios
        )
    assert result.value(names.AGENT_POOL_USE_MAX) == 1.0
    assert result.value(names.AGENT_POOL_TIMEOUTS_REPORTED) == sum(b.timeouts for b in beats)
    assert result.value(names.AGENT_POOL_TIMEOUTS_INSTANCES) == sum(b.timeouts > 0 for b in beats)
    top = {s.labels[names.LABEL_INSTANCE_ID]: s.value for s in _instance_labelled(result)}
    assert top == {"pod-0100": 1.0, "pod-0150": 0.98, "pod-0299": 0.96}
    assert result.type_of(names.AGENT_POOL_TOP_USE) == "gauge"

    one = scrape(server, "agg", top_instances=1)
    assert {s.labels[names.LABEL_INSTANCE_ID] for s in _instance_labelled(one)} == {"pod-0100"}


def test_top_instances_zero_publishes_no_instance(server: RedisServer) -> None:
    _fleet(server, 50, "none")
    result = scrape(server, "none", top_instances=0)
    assert _instance_labelled(result) == []
    assert result.value(names.AGENT_POOL_USE_INSTANCES, le="+Inf") == 50


def live_count(result: Scrape) -> float:
    return result.value(names.AGENT_INSTANCES, state="ready") + result.value(
        names.AGENT_INSTANCES, state="not_ready"
    )


def test_an_instance_that_dies_without_a_word_leaves_the_aggregates(server: RedisServer) -> None:
    """Instances come, change bucket, and one stops beating: after its TTL it is neither
    counted, nor in a bucket, nor among the most used, whether or not a heartbeat of the
    shard has pruned it yet; and a bucket change moves it instead of counting it twice."""
    beats = _fleet(server, 20, "dead")
    client = server.client()
    worst = Beat("pod-0000-dying", True, 50, 50, 7)  # at 100 %, first of the ties by id
    write_heartbeats(client, [worst], "dead", ttl_ms=300)
    before = scrape(server, "dead", top_instances=1)
    assert live_count(before) == 21
    assert {s.labels[names.LABEL_INSTANCE_ID] for s in _instance_labelled(before)} == {
        "pod-0000-dying"
    }
    moved = Beat(beats[0].instance_id, beats[0].ready, 1, 50, beats[0].timeouts)
    write_heartbeats(client, [moved], "dead")  # from 0 % to 2 %: same bucket; then to 60 %
    write_heartbeats(client, [Beat(moved.instance_id, moved.ready, 30, 50, 0)], "dead")
    time.sleep(0.4)  # pod-dying's heartbeat expires; nobody has beaten since
    beats[0] = Beat(moved.instance_id, moved.ready, 30, 50, 0)
    for pruned in (False, True):
        if pruned:  # a later heartbeat of the shard takes it out of the kept aggregates
            write_heartbeats(client, [beats[1]], "dead")
        result = scrape(server, "dead", top_instances=3)
        assert live_count(result) == 20
        ratios = [b.in_use / b.pool_max for b in beats]
        for le in POOL_USE_BUCKETS:
            assert result.value(names.AGENT_POOL_USE_INSTANCES, le=f"{le:g}") == sum(
                r <= le for r in ratios
            )
        assert result.value(names.AGENT_POOL_USE_MAX) == max(ratios)
        assert result.value(names.AGENT_POOL_TIMEOUTS_REPORTED) == sum(b.timeouts for b in beats)
        top = [s.labels[names.LABEL_INSTANCE_ID] for s in _instance_labelled(result)]
        assert "pod-0000-dying" not in top and len(top) == 3
    layout = schema.Schema("dead", schema.STANDALONE_SHARDS)
    live_key, use_key, _ = layout.pool_aggregate_keys("pod-0000-dying")
    assert client.zscore(live_key, "pod-0000-dying") is None
    assert client.zscore(use_key, "pod-0000-dying") is None


def test_more_expired_than_the_discount_falls_back_to_the_walk(server: RedisServer) -> None:
    """Half a fleet gone at once, more than a scrape discounts: the walk still answers."""
    _fleet(server, 10, "mass")
    gone = [Beat(f"gone-{i:04d}", True, 50, 50, 1) for i in range(POOL_DISCOUNT_MAX + 5)]
    write_heartbeats(server.client(), gone, "mass", ttl_ms=200)
    time.sleep(0.3)
    result = scrape(server, "mass", top_instances=3)
    assert live_count(result) == 10
    assert result.value(names.AGENT_POOL_TIMEOUTS_REPORTED) == sum(b.timeouts for b in fleet_of(10))
    assert not any(
        s.labels[names.LABEL_INSTANCE_ID].startswith("gone-") for s in _instance_labelled(result)
    )


def test_every_pool_key_is_bounded_and_expires(server: RedisServer) -> None:
    """The aggregates keep a fixed set of fields, one member per live instance, and a TTL."""
    _fleet(server, 30, "bound")
    client = server.client()
    layout = schema.Schema("bound", schema.STANDALONE_SHARDS)
    live_key, use_key, sums_key = layout.pool_aggregate_keys("pod-0000")
    assert client.zcard(live_key) == client.zcard(use_key) == 30
    expected = set(schema.POOL_SUM_FIELDS) | {
        schema.pool_bucket_field(b) for b in (*POOL_USE_BUCKETS, None)
    }
    assert set(client.hkeys(sums_key)) <= expected
    for key in (live_key, use_key, sums_key, layout.pool_keys()[0]):
        assert 0 < client.pttl(key) <= 4 * 60_000


def test_diagnose_reads_each_live_instance(server: RedisServer) -> None:
    beats = _fleet(server, 40, "diag")
    client = server.client()
    aggregate = read_fleet(client, FleetOptions(namespace="diag"))
    assert aggregate.instances == {} and aggregate.pool.ready + aggregate.pool.not_ready == 40
    detailed = read_fleet(client, FleetOptions(namespace="diag", instance_details=True))
    assert len(detailed.instances) == 40
    for beat in beats:
        got = detailed.instances[beat.instance_id]
        assert (got.ready, got.pool_in_use, got.pool_max, got.pool_timeouts) == (
            beat.ready,
            beat.in_use,
            beat.pool_max,
            beat.timeouts,
        )
    assert detailed.pool == aggregate.pool


@pytest.mark.parametrize("evicted", [*schema.POOL_AGGREGATE_KINDS, "pool"])
def test_an_evicted_pool_key_neither_empties_nor_corrupts_the_count(
    server: RedisServer, evicted: str
) -> None:
    """Every pool key carries a TTL, so a volatile-* policy at maxmemory may evict any of them
    (the demo's eviction incident did, and paged AgentNoReadyInstances). The count read right
    after, after a heartbeat, and once the dead have been pruned stays the fleet's."""
    namespace = f"ev-{evicted}"
    beats = _fleet(server, 30, namespace)
    client = server.client()
    layout = schema.Schema(namespace, schema.STANDALONE_SHARDS)
    keys = dict(
        zip(schema.POOL_AGGREGATE_KINDS, layout.pool_aggregate_keys("pod-0000"), strict=True)
    )
    keys["pool"] = layout.pool_index("pod-0000")
    dying = Beat("pod-dying", True, 10, 50, 0)
    write_heartbeats(client, [dying], namespace, ttl_ms=300)
    assert client.delete(keys[evicted]) == 1

    def check(expected: list[Beat]) -> None:
        result = scrape(server, namespace, top_instances=3)
        assert live_count(result) == len(expected)
        assert result.value(names.AGENT_INSTANCES, state="ready") == sum(b.ready for b in expected)
        ratios = [b.in_use / b.pool_max for b in expected]
        for le in POOL_USE_BUCKETS:
            assert result.value(names.AGENT_POOL_USE_INSTANCES, le=f"{le:g}") == sum(
                r <= le for r in ratios
            )
        assert result.value(names.AGENT_POOL_TIMEOUTS_REPORTED) == sum(b.timeouts for b in expected)
        assert result.value(names.AGENT_POOL_USE_MAX) == max(ratios)

    check([*beats, dying])
    write_heartbeats(client, [beats[1]], namespace)  # one beat of the shard
    if evicted == "pool":
        # the figures themselves are gone: each instance is counted again from its next beat
        check([beats[1]])
        write_heartbeats(client, beats, namespace)
        write_heartbeats(client, [dying], namespace, ttl_ms=300)
    check([*beats, dying])
    time.sleep(0.4)  # pod-dying expires; the others beat on, pruning it
    write_heartbeats(client, beats, namespace)
    check(beats)
    sums = client.hmget(keys["pool_sums"], "ready", "not_ready", "reporting")
    assert [int(x or 0) for x in sums] == [
        sum(b.ready for b in beats),
        sum(not b.ready for b in beats),
        len(beats),
    ]
    assert client.zcard(keys["pool_live"]) == len(beats)
