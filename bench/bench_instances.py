"""Benchmark the scrape of `memorywatch exporter` at 100 and 10,000 heartbeating agent instances.

Not a test: it starts a redis-server on a free loopback port, writes N heartbeats in the layout
of `memorywatch.schema` through the SDK's own heartbeat script (hash with a TTL, instances
index, pool hash entry and the shard's pool aggregates), then scrapes `memorywatch exporter`
and, as the peer against the same Redis in the same run, Debian's prometheus-redis-exporter. It prints scrape p50/p99, samples per scrape (which must
not depend on N), the Redis time the pool script costs per scrape, and for comparison the
per-instance read this replaced (one HGETALL per live instance, pipelined). Every process it
starts is stopped by its pid. Exits 1 if the samples differ between the sizes or p99 at the
largest size is 50 ms or more.

    python bench/bench_instances.py [--instances 100,10000] [--scrapes 200] [--exporter-src DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import redis

from bench_exporter import Scraper, peer_version, start_peer
from harness import ExporterProcess, redis_server, wait_until
from memorywatch import schema
from memorywatch.agent._values import script_text

WARMUP = 10
HEARTBEAT_PX = 600_000
"""Longer than the SDK's 15 s: nothing refreshes the heartbeats during the run."""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def write_fleet(client: redis.Redis, n: int) -> None:
    """The schema hash and n heartbeats: pools of 20 with use spread over 0..20, a few
    timeouts, every 9th instance not ready."""
    client.flushall()
    layout = schema.Schema(schema.DEFAULT_NAMESPACE, schema.STANDALONE_SHARDS)
    client.hset(
        layout.schema_key(),
        mapping={
            schema.SCHEMA_FIELD_VERSION: schema.SCHEMA_VERSION,
            schema.SCHEMA_FIELD_SHARDS: schema.STANDALONE_SHARDS,
        },
    )
    heartbeat = script_text("heartbeat")
    pipe = client.pipeline(transaction=False)
    for i in range(n):
        instance = f"agent-7f9c{i:06d}-x2k4q"  # a pod-like name
        keys = [
            layout.heartbeat(instance),
            layout.instances_index(instance),
            layout.pool_index(instance),
            *layout.pool_aggregate_keys(instance),
        ]
        fields = {
            schema.HEARTBEAT_READY: int(i % 9 != 0),
            schema.HEARTBEAT_POOL_IN_USE: (i * 7) % 21,
            schema.HEARTBEAT_POOL_MAX: 20,
            schema.HEARTBEAT_POOL_PENDING: 0,
            schema.HEARTBEAT_POOL_TIMEOUTS: int(i % 13 == 0),
            schema.HEARTBEAT_SDK_VERSION: "bench",
            schema.HEARTBEAT_SCHEMA_VERSION: schema.SCHEMA_VERSION,
        }
        pairs = [x for pair in fields.items() for x in pair]
        pipe.eval(heartbeat, len(keys), *keys, instance, HEARTBEAT_PX, *pairs)
        if i % 1000 == 999:
            pipe.execute()
    pipe.execute()


def script_usec(client: redis.Redis) -> tuple[int, int]:
    stats = client.info("commandstats").get("cmdstat_eval", {})
    return int(stats.get("calls", 0)), int(stats.get("usec", 0))


def old_read_ms(client: redis.Redis, n: int, rounds: int = 20) -> float:
    """p50 of the replaced step 3: ZRANGEBYSCORE the ids, then one HGETALL each, pipelined."""
    layout = schema.Schema(schema.DEFAULT_NAMESPACE, schema.STANDALONE_SHARDS)
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        ids = client.zrangebyscore(layout.instances_keys()[0], "-inf", "+inf")
        pipe = client.pipeline(transaction=False)
        for instance in ids:
            pipe.hgetall(layout.heartbeat(str(instance)))
        pipe.execute()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def measure(scraper: Scraper, scrapes: int) -> tuple[float, float, int]:
    for _ in range(WARMUP):
        scraper.get(record=False)
    scraper.latencies.clear()
    for _ in range(scrapes):
        scraper.get()
    ms = [s * 1e3 for s in scraper.latencies]
    return percentile(ms, 50), percentile(ms, 99), scraper.samples()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--instances", default="100,10000")
    parser.add_argument("--scrapes", type=int, default=200)
    parser.add_argument(
        "--exporter-src",
        help="PYTHONPATH of the exporter process, e.g. another worktree's src/ to compare "
        "commits (keep --scrapes x its scrape time under the 60 s instance window)",
    )
    args = parser.parse_args()
    sizes = [int(n) for n in args.instances.split(",")]
    print(f"peer: prometheus-redis-exporter {peer_version()}; {args.scrapes} scrapes each")
    rows = []
    with contextlib.ExitStack() as stack:
        server = stack.enter_context(redis_server())
        client = server.client()
        env = {"PYTHONPATH": args.exporter_src} if args.exporter_src else {}
        ours = ExporterProcess(["--redis-url", server.url, "--sample-interval", "3600"], env=env)
        stack.callback(ours.cleanup)
        peer_port, _ = start_peer(stack, server.url)
        ours.start()
        wait_until(lambda: Scraper(peer_port, True).get(False) or True, 15, what="peer")
        # a first pass over every size runs every command once, so that the redis_commands_*
        # series (by cmd) of both exporters are the same in every measured pass
        for n in sizes:
            write_fleet(client, n)
            for port in (ours.port, peer_port):
                Scraper(port, True).get(False)
            old_read_ms(client, n, rounds=1)
        for n in sizes:
            write_fleet(client, n)
            mine, theirs = Scraper(ours.port, True), Scraper(peer_port, True)
            calls0, usec0 = script_usec(client)
            p50, p99, samples = measure(mine, args.scrapes)
            calls1, usec1 = script_usec(client)
            peer50, peer99, peer_samples = measure(theirs, args.scrapes)
            per_script = (usec1 - usec0) / max(calls1 - calls0, 1)
            old = old_read_ms(client, n)
            rows.append((n, p50, p99, samples, peer50, peer99, peer_samples, per_script, old))
    print(
        f"{'instances':>9} {'p50 ms':>7} {'p99 ms':>7} {'samples':>7} | {'peer p50':>8} "
        f"{'peer p99':>8} {'samples':>7} | {'p50 ratio':>9} | {'script us':>9} | "
        f"{'old HGETALL read p50 ms':>23}"
    )
    for n, p50, p99, samples, peer50, peer99, peer_samples, per_script, old in rows:
        print(
            f"{n:>9} {p50:>7.2f} {p99:>7.2f} {samples:>7} | {peer50:>8.2f} {peer99:>8.2f} "
            f"{peer_samples:>7} | {p50 / peer50:>9.2f} | {per_script:>9.0f} | {old:>23.2f}"
        )
    equal = len({row[3] for row in rows}) == 1
    fast = rows[-1][2] < 50
    print(f"samples per scrape equal at every size: {equal}")
    print(f"p99 at {rows[-1][0]} instances under 50 ms: {fast}")
    return 0 if equal and fast else 1


if __name__ == "__main__":
    sys.exit(main())
