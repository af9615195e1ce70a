"""Benchmark the keyspace sampler: what it costs between scrapes, in the exporter and in Redis.

Not a test. For each keyspace size it starts a real Redis (filled with DEBUG POPULATE plus keys
of every built-in profile and of our schema), `memorywatch exporter` (the CLI process, default
settings) and Debian's prometheus-redis-exporter against it, scrapes each once per second for
`--seconds`, then again with the sampler held off (`--sample-budget 1 --sample-interval
86400`), and prints: exporter CPU against the peer's (each thread's run time from
/proc/PID/task/*/schedstat, in ns; utime+stime's 10 ms ticks beside it), Redis CPU the
sampler adds (used_cpu_sys+used_cpu_user, on minus off), the script's cost per key inside
Redis (commandstats), the keys walked per second (the exporter's
memorywatch_keyspace_sampler_keys_walked_total), the share of them MEMORY USAGE was asked of
(agent memory always, unclaimed keys one in MEASURE_EVERY), the time of a full pass (measured when it
ends within the window, else extrapolated from the measured rate, and said so), and the CPU per
scrape of a burst of back-to-back scrapes (what bench_exporter.py times). Exits 0.

    python bench/bench_sampler.py [--keys 0 100000 1000000] [--seconds 60] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_exporter import Scraper, cpu_between, cpu_seconds, keeps_alive, start_peer, thread_cpu
from harness import (
    ExporterProcess,
    RedisServer,
    redis_server,
    wait_until,
)
from memorywatch import names, schema
from memorywatch.exporter.profiles import BUILTIN

BURST = 100
OFF = ("--sample-budget", "1", "--sample-interval", "86400")


def fill(server: RedisServer, keys: int) -> int:
    """DEBUG POPULATE plus 1 % of the keys in every built-in profile's layouts and our schema's
    (a third of them without a TTL)."""
    client = server.client()
    extra = keys // 100
    patterns = [p for profile in BUILTIN.values() for p in profile.patterns]
    ours = schema.Schema("mw", 1)
    per = max(1, extra // (len(patterns) + 2)) if keys else 0
    pipe = client.pipeline(transaction=False)
    for i in range(per):
        ttl = None if i % 3 == 0 else 3600
        for n, pattern in enumerate(patterns):
            key = pattern.glob.replace("*", f"k{n}-{i}").replace("?", "q")
            if pattern.redis_type in ("hash", None):
                pipe.hset(key, mapping={"memory": "x" * 64, "created_at": "1"})
            elif pattern.redis_type == "list":
                pipe.rpush(key, "x" * 64, "y" * 64)
            elif pattern.redis_type == "zset":
                pipe.zadd(key, {"x" * 32: 1.0})
            elif pattern.redis_type == "set":
                pipe.sadd(key, "x" * 32)
            else:
                pipe.set(key, "x" * 64)
            if ttl:
                pipe.expire(key, ttl)
        pipe.rpush(ours.history(f"s{i}"), '{"role":"user","text":"hi","ts":1}')
        pipe.hset(ours.preferences(f"u{i}"), "tone", '"short"')
        if ttl:
            pipe.expire(ours.history(f"s{i}"), ttl)
            pipe.expire(ours.preferences(f"u{i}"), ttl)
        if i % 50 == 49:
            pipe.execute()
    pipe.execute()
    populate = keys - int(client.dbsize())
    if populate > 0:
        client.execute_command("DEBUG", "POPULATE", str(populate), "bench")
    return int(client.dbsize())


def redis_cpu(client: Any) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


def metric(body: bytes, name: str) -> float | None:
    for line in body.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def sample_keys(body: bytes) -> float | None:
    return metric(body, names.KEYSPACE_SAMPLE_KEYS)


def phase(server: RedisServer, peer_port: int, peer_pid: int, args: list[str], seconds: float):
    """One exporter run against the Redis, both exporters scraped once per second."""
    client = server.client()
    ours = ExporterProcess(args=["--redis-url", server.url, *args])
    started = time.monotonic()
    ours.start()
    try:
        assert ours.proc is not None
        pid = ours.proc.pid
        keepalive = keeps_alive(ours.port) and keeps_alive(peer_port)
        mine, theirs = Scraper(ours.port, keepalive), Scraper(peer_port, keepalive)
        client.config_resetstat()
        cpu0 = {"memorywatch": cpu_seconds(pid), "peer": cpu_seconds(peer_pid)}
        threads0 = {"memorywatch": thread_cpu(pid), "peer": thread_cpu(peer_pid)}
        redis0, t0 = redis_cpu(client), time.monotonic()
        full_pass: float | None = None
        walked: list[tuple[float, float]] = []  # (time, keys walked so far) at each scrape
        for tick in range(int(seconds)):
            mine.get()
            theirs.get()
            walked.append((time.monotonic(), metric(mine.body, names.SAMPLER_WALKED) or 0.0))
            if full_pass is None and sample_keys(mine.body):
                full_pass = time.monotonic() - started
            delay = t0 + tick + 1 - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        elapsed = time.monotonic() - t0
        cpu1 = {"memorywatch": cpu_seconds(pid), "peer": cpu_seconds(peer_pid)}
        threads1 = {"memorywatch": thread_cpu(pid), "peer": thread_cpu(peer_pid)}
        redis1 = redis_cpu(client)
        stats = client.info("commandstats")
        script = stats.get("cmdstat_evalsha", {"calls": 0, "usec": 0})
        span = walked[-1][0] - walked[0][0]
        keys_walked = (walked[-1][1] - walked[0][1]) * elapsed / span if span > 0 else 0.0
        burst0 = {"memorywatch": cpu_seconds(pid), "peer": cpu_seconds(peer_pid)}
        for _ in range(BURST):
            mine.get(record=False)
            theirs.get(record=False)
        burst1 = {"memorywatch": cpu_seconds(pid), "peer": cpu_seconds(peer_pid)}
        for s in (mine, theirs):
            s.conn.close()
        return {
            "seconds": elapsed,
            "cpu": {k: cpu1[k] - cpu0[k] for k in cpu0},
            "cpu_ns": {k: cpu_between(threads0[k], threads1[k]) for k in threads0},
            "redis_cpu": redis1 - redis0,
            "script_calls": int(script["calls"]),
            "script_usec": int(script["usec"]),
            "keys_walked": keys_walked,
            "memory_usage_calls": int(stats.get("cmdstat_memory|usage", {"calls": 0})["calls"]),
            "first_full_pass_s": full_pass,
            "burst_ms_per_scrape": {k: (burst1[k] - burst0[k]) / BURST * 1e3 for k in burst0},
        }
    finally:
        ours.cleanup()


def run_size(keys: int, seconds: float) -> dict[str, Any]:
    with contextlib.ExitStack() as stack:
        server = stack.enter_context(redis_server())
        total = fill(server, keys)
        peer_port, peer = start_peer(stack, server.url)
        wait_until(lambda: keeps_alive(peer_port) or True, 15, what="peer /metrics")
        on = phase(server, peer_port, peer.pid, [], seconds)
        off = phase(server, peer_port, peer.pid, list(OFF), seconds)
    rate = on["keys_walked"] / on["seconds"]
    measured = on["first_full_pass_s"]
    return {
        "keys": total,
        "on": on,
        "off": off,
        "keys_per_s": rate,
        "full_pass_s": measured if measured is not None else (total / rate if rate else None),
        "full_pass_measured": measured is not None,
        "redis_us_per_key": on["script_usec"] / on["keys_walked"] if on["keys_walked"] else None,
        "redis_core_pct_added": (on["redis_cpu"] - off["redis_cpu"]) / on["seconds"] * 100,
        "exporter_us_per_key": (
            (on["cpu"]["memorywatch"] - off["cpu"]["memorywatch"]) / on["keys_walked"] * 1e6
            if on["keys_walked"]
            else None
        ),
    }


def report(r: dict[str, Any]) -> None:
    on, off = r["on"], r["off"]
    print(f"== {r['keys']:,} keys, {on['seconds']:.0f} s at one scrape per second each ==")
    for label, phase_result in (("on: ", on), ("off:", off)):
        print(f"exporter CPU, sampler {label} {cpu_text(phase_result)}")
    print(
        f"Redis CPU added by the sampler: {r['redis_core_pct_added']:.2f} % of a core "
        f"(on {on['redis_cpu']:.2f} s, off {off['redis_cpu']:.2f} s; target < 1 %)"
    )
    if r["keys_per_s"]:
        kind = "measured" if r["full_pass_measured"] else "extrapolated from the measured rate"
        print(
            f"keys walked: {r['keys_per_s']:.0f}/s; full pass {r['full_pass_s']:.0f} s ({kind}); "
            f"in Redis {r['redis_us_per_key']:.2f} us/key, "
            f"{on['script_usec'] / max(on['script_calls'], 1):.0f} us per script call; "
            f"exporter {r['exporter_us_per_key']:.2f} us/key; MEMORY USAGE on "
            f"{on['memory_usage_calls'] / max(on['keys_walked'], 1) * 100:.0f} % of them"
        )
    burst = on["burst_ms_per_scrape"]
    print(
        f"burst of {BURST} back-to-back scrapes: memorywatch {burst['memorywatch']:.2f} ms, "
        f"peer {burst['peer']:.2f} ms CPU per scrape\n"
    )


def cpu_text(phase_result: dict[str, Any]) -> str:
    """Both exporters' CPU and their ratio: each thread's run time (ns resolution) when no
    thread ended during the phase, and utime+stime in 10 ms ticks beside it."""
    ticks, precise = phase_result["cpu"], phase_result["cpu_ns"]

    def ratio(cpu: dict[str, float]) -> float:
        return cpu["memorywatch"] / cpu["peer"] if cpu["peer"] else float("nan")

    text = (
        f"in ticks memorywatch {ticks['memorywatch']:.2f} s, peer {ticks['peer']:.2f} s, "
        f"ratio {ratio(ticks):.2f}"
    )
    if precise["memorywatch"] is None or precise["peer"] is None:
        return f"{text} (target <= 1.0; a thread ended, no ns reading)"
    return (
        f"memorywatch {precise['memorywatch']:.3f} s, peer {precise['peer']:.3f} s, ratio "
        f"{ratio(precise):.2f} (target <= 1.0; {text})"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, nargs="+", default=[0, 100_000, 1_000_000])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = []
    for keys in args.keys:
        result = run_size(keys, args.seconds)
        results.append(result)
        if not args.json:
            report(result)
    if args.json:
        print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
