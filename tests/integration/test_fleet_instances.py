"""Agent instances without a label each: the pool figures of hundreds of heartbeats are
published as bounded aggregates plus the --top-instances most used pools, read server-side by
one script per shard. Heartbeats are written in the schema's layout (as the SDK's heartbeat
script writes them) so a test of 300 instances takes a fraction of a second."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis

from harness import RedisServer, redis_server
from memorywatch import names, schema
from memorywatch.exporter.collectors.fleet.read import POOL_USE_BUCKETS, read_fleet
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


def write_heartbeats(client: redis.Redis, beats: list[Beat], namespace: str) -> None:
    """HSET + PEXPIRE of each heartbeat hash and ZADD to the instances index, as heartbeat.lua;
    the packed pool entry for every other instance only, as an SDK older than the pool hash
    writes none (a rolling upgrade): the exporter reads those from their heartbeat hash."""
    layout = schema.Schema(namespace, schema.STANDALONE_SHARDS)
    seconds, micros = client.time()
    now_ms = seconds * 1000 + micros // 1000
    pipe = client.pipeline(transaction=False)
    for beat in beats:
        key = layout.heartbeat(beat.instance_id)
        pipe.hset(
            key,
            mapping={
                schema.HEARTBEAT_READY: int(beat.ready),
                schema.HEARTBEAT_POOL_IN_USE: beat.in_use,
                schema.HEARTBEAT_POOL_MAX: beat.pool_max,
                schema.HEARTBEAT_POOL_TIMEOUTS: beat.timeouts,
                schema.HEARTBEAT_TS_MS: now_ms,
            },
        )
        pipe.pexpire(key, 60_000)
        pipe.zadd(layout.instances_index(beat.instance_id), {beat.instance_id: now_ms})
        if int(beat.instance_id[-1]) % 2 == 0:
            entry = (now_ms, 60_000, int(beat.ready), beat.in_use, beat.pool_max, beat.timeouts)
            packed = struct.pack(schema.POOL_ENTRY_FORMAT, *entry) + beat.instance_id.encode()
            pipe.hset(layout.pool_index(beat.instance_id), beat.instance_id, packed)
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


def test_a_dead_instance_is_neither_counted_nor_live(server: RedisServer) -> None:
    beats = _fleet(server, 20, "dead")
    client = server.client()
    layout = schema.Schema("dead", schema.STANDALONE_SHARDS)
    client.delete(layout.heartbeat(beats[3].instance_id))  # its hash expired, index remains
    # one of the new SDK: its pool entry says its heartbeat expired a second ago
    seconds, micros = client.time()
    stale = (seconds * 1000 + micros // 1000 - 16_000, 15_000, 1, 1, 50, 0)
    packed = struct.pack(schema.POOL_ENTRY_FORMAT, *stale) + beats[4].instance_id.encode()
    client.hset(layout.pool_index(beats[4].instance_id), beats[4].instance_id, packed)
    result = scrape(server, "dead")
    live = result.value(names.AGENT_INSTANCES, state="ready") + result.value(
        names.AGENT_INSTANCES, state="not_ready"
    )
    assert live == 18


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
