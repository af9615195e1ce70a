"""A day of a fleet through both clients: 10,000 distinct lock resources (both call forms),
10,000 idempotency keys and 10,000 sessions (bench/bench_churn.py runs 100,000 and more). Afterwards every key without a TTL, and its
size, must be within the bound docs/schema.md names, and the exporter's scrape must be the
same size as before the churn: no resource, key or session became a label or a field."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import redis

from churn import KINDS, baseline, bounds, churn, keys_without_ttl
from harness import RedisServer, redis_server
from memorywatch import names, schema
from memorywatch.agent import AgentState
from metrics import InProcessExporter, Scrape

COUNT = 10_000
"""Enough for a key that grows per resource to stand out by four orders of magnitude above
every bound; 100,000 took three minutes of a fifteen-minute CI."""
NAMESPACE = "churn"


@pytest.fixture(scope="module")
def server() -> Iterator[RedisServer]:
    with redis_server() as srv:
        yield srv


def _scrapes(url: str, count: int) -> tuple[Scrape, list[float]]:
    with InProcessExporter(redis_url=url, namespace=NAMESPACE) as exporter:
        times = []
        for _ in range(count):
            started = time.perf_counter()
            last = exporter.scrape()
            times.append(time.perf_counter() - started)
    return last, sorted(times)


SAMPLER = (
    names.KEYS_WITHOUT_TTL,
    names.SAMPLER_AGE,
    names.KEYSPACE_KEYS,
    names.KEYSPACE_BYTES,
    names.KEYSPACE_SAMPLE_KEYS,
)
"""By the background pass, present once it finished one: a matter of timing (their label sets
are profiles x classes, bounded by construction)."""


def _fleet_samples(scrape: Scrape) -> dict[str, set[tuple[tuple[str, str], ...]]]:
    out: dict[str, set[tuple[tuple[str, str], ...]]] = {}
    for sample in scrape.all_samples:
        if (
            sample.name.startswith("memorywatch_")
            and not sample.name.startswith(("memorywatch_scrape", "memorywatch_exporter"))
            and sample.name not in SAMPLER
        ):
            out.setdefault(sample.name, set()).add(tuple(sorted(sample.labels.items())))
    return out


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_day_of_churn_stays_within_the_documented_bounds(
    server: RedisServer, raw: redis.Redis
) -> None:
    baseline(server.url, NAMESPACE)
    before, before_times = _scrapes(server.url, 20)

    done = churn(server.url, NAMESPACE, COUNT, progress=lambda line: None)
    assert done.resources == done.keys == done.sessions == COUNT
    assert done.by_client == {"sync": COUNT // 2, "asyncio": COUNT - COUNT // 2}

    after, after_times = _scrapes(server.url, 20)
    layout = schema.Schema(NAMESPACE, 1)
    limits = bounds(layout, schema.DEFAULT_NAME_CAP, sessions=COUNT + 1000)
    unbounded = keys_without_ttl(raw, NAMESPACE)
    unknown = set(unbounded.keys) - set(limits)
    assert not unknown, f"keys without a TTL and without a documented bound: {unknown}"
    over = {k: (n, limits[k]) for k, n in unbounded.keys.items() if n > limits[k]}
    assert not over, f"keys past their bound (size, bound): {over}"
    # What a scrape reads and publishes did not grow with the churn.
    assert unbounded.keys["{0}:stats:lock_wait_seconds"] <= 4 * (len(schema.LOCK_WAIT_BUCKETS) + 2)
    assert set(raw.smembers(layout.names(schema.NAMES_LOCK, "x"))) == {*KINDS, "order"}
    assert _fleet_samples(after) == _fleet_samples(before)
    locks = {s.labels["lock"] for s in after.samples(names.LOCK_ACQUISITIONS)}
    assert locks == {*KINDS, "order"}  # resources and one-argument order ids: no labels
    assert after.value(names.LOCK_ACQUISITIONS, lock="order") == COUNT // 2 + 1
    assert after.value(names.TOOL_EXECUTIONS, tool="charge_card", status="completed") > 0
    assert after.value(names.SESSIONS_ACTIVE) == COUNT + 1000
    p99_before, p99_after = before_times[-1], after_times[-1]
    print(
        f"\nfleet scrape p99 before {p99_before * 1000:.1f} ms, after {COUNT:,} of each "
        f"{p99_after * 1000:.1f} ms ({p99_after / p99_before:.2f}x; bench/bench_churn.py "
        f"measures it properly); keys without TTL: {len(unbounded.keys)}"
    )


def test_bounds_fail_when_a_key_grows_per_resource(server: RedisServer, raw: redis.Redis) -> None:
    """The check above can fail: a per-resource key without a TTL is caught."""
    namespace = "leaky"
    state = AgentState.from_url(server.url, namespace=namespace)
    with state.lock("charge", "order-1"):
        pass
    state.close()
    raw.set(f"{namespace}:{{0}}:fence:order-1", 1)  # the version-1 layout's leak
    limits = bounds(schema.Schema(namespace, 1), schema.DEFAULT_NAME_CAP, sessions=0)
    unknown = set(keys_without_ttl(raw, namespace).keys) - set(limits)
    assert unknown == {"{0}:fence:order-1"}
