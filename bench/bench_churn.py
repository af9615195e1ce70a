"""A day of churn, then the fleet scrape: schema v2 against memorywatch 0.1 (schema v1).

    python bench/bench_churn.py [--count 100000] [--scrapes 200] [--peer-count 50000]

Not a test. On one private redis-server: a baseline fleet, then ``--count`` distinct lock
resources (half in each call form), idempotency keys and sessions through both clients
(tests/churn.py). It scrapes ``memorywatch exporter`` (a real process, keep-alive HTTP) before
and after and prints p50/p99 and their ratio, and every key left without a TTL with its size.

The peer is this project's own previous release, run in the same run on its own namespace:
the v1 SDK and exporter (git commit ``V1_COMMIT``, checked out into a temporary folder), with
``--peer-count`` distinct one-argument lock names, the README's ``state.lock("order-42")``.
Every process it starts is stopped by its pid; exits 0 whatever it finds.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from churn import baseline, bounds, churn, keys_without_ttl  # noqa: E402
from harness import ExporterProcess, RedisServer  # noqa: E402
from memorywatch import schema  # noqa: E402

V1_COMMIT = "c31e39d"
"""The last commit of memorywatch 0.1 (schema version 1)."""
NAMESPACE = "churn"
PEER_NAMESPACE = "churnv1"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def scrape_times(exporter: ExporterProcess, scrapes: int) -> list[float]:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", exporter.port, timeout=30)
    times = []
    for n in range(scrapes + 5):
        started = time.perf_counter()
        conn.request("GET", "/metrics")
        response = conn.getresponse()
        response.read()
        if n >= 5:  # warm-up scrapes are not counted
            times.append(time.perf_counter() - started)
    conn.close()
    return times


def exporter_for(url: str, namespace: str, env: dict[str, str] | None = None) -> ExporterProcess:
    args = ["--redis-url", url, "--namespace", namespace, "--sample-interval", "3600"]
    return ExporterProcess(args, env=env or {}).start()


PEER_CHURN = """
import sys
from memorywatch.agent import AgentState
state = AgentState.from_url(sys.argv[1], namespace=sys.argv[2], instance_id="v1")
start, stop = int(sys.argv[3]), int(sys.argv[4])
for i in range(start, stop):
    with state.lock(f"order-{i}", ttl=30):
        pass
state.close()
"""


def v1_tree(workdir: Path) -> Path | None:
    target = workdir / "v1"
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", V1_COMMIT, "src"], capture_output=True, check=False
    )
    if archive.returncode:
        print(f"peer skipped: git archive {V1_COMMIT} failed: {archive.stderr.decode()[:200]}")
        return None
    target.mkdir()
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)
    return target / "src"


def run_peer(url: str, count: int, scrapes: int, workdir: Path) -> tuple[float, float] | None:
    src = v1_tree(workdir)
    if src is None:
        return None
    env = {"PYTHONPATH": str(src)}
    exporter = exporter_for(url, PEER_NAMESPACE, env)
    try:
        before = scrape_times(exporter, scrapes)
        step = count // 4
        procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    PEER_CHURN,
                    url,
                    PEER_NAMESPACE,
                    str(n * step),
                    str((n + 1) * step),
                ],
                env={**os.environ, **env},
            )
            for n in range(4)
        ]
        for proc in procs:
            proc.wait(3600)
        after = scrape_times(exporter, max(10, scrapes // 10))
    finally:
        exporter.stop()
    return percentile(before, 99), percentile(after, 99)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--scrapes", type=int, default=200)
    parser.add_argument("--peer-count", type=int, default=50_000)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="mw-churn-"))
    server = RedisServer().start()
    try:
        url = server.url
        print(f"redis {server.client().info('server')['redis_version']} on {url}")
        baseline(url, NAMESPACE)
        exporter = exporter_for(url, NAMESPACE)
        try:
            before = scrape_times(exporter, args.scrapes)
            started = time.monotonic()
            churn(url, NAMESPACE, args.count)
            print(f"churn of {args.count:,} each: {time.monotonic() - started:.0f} s")
            after = scrape_times(exporter, args.scrapes)
        finally:
            exporter.stop()
        p99_before, p99_after = percentile(before, 99), percentile(after, 99)
        print(f"fleet scrape, schema v2 ({args.scrapes} keep-alive scrapes each):")
        print(
            f"  before: p50 {statistics.median(before) * 1e3:6.1f} ms  p99 {p99_before * 1e3:6.1f} ms"
        )
        print(
            f"  after:  p50 {statistics.median(after) * 1e3:6.1f} ms  p99 {p99_after * 1e3:6.1f} ms"
        )
        print(f"  p99 after / before: {p99_after / p99_before:.2f}x (target <= 1.5x)")
        client = server.client()
        unbounded = keys_without_ttl(client, NAMESPACE)
        limits = bounds(schema.Schema(NAMESPACE, 1), schema.DEFAULT_NAME_CAP, args.count + 1000)
        print(f"keys without TTL after the churn: {len(unbounded.keys)}")
        for key, size in sorted(unbounded.keys.items()):
            print(f"  {key:<40} {size:>8} (bound {limits.get(key, 'NONE')})")
        print(f"used_memory: {client.info('memory')['used_memory_human']}")
        if args.peer_count:
            peer = run_peer(url, args.peer_count, args.scrapes, workdir)
            if peer is not None:
                v1_keys = keys_without_ttl(client, PEER_NAMESPACE)
                fields = sum(v1_keys.keys.values())
                print(
                    f"peer, memorywatch 0.1 (schema v1), {args.peer_count:,} one-argument lock names:"
                )
                print(
                    f"  p99 before {peer[0] * 1e3:.1f} ms, after {peer[1] * 1e3:.1f} ms "
                    f"({peer[1] / peer[0]:.1f}x)"
                )
                print(
                    f"  keys without TTL: {len(v1_keys.keys):,} holding {fields:,} fields/members"
                )
    finally:
        server.cleanup()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
