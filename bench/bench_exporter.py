"""Benchmark `memorywatch exporter` against Debian's prometheus-redis-exporter 1.45.

Not a test: it starts a real master + replica, both exporters on free loopback ports, scrapes
each of them and prints latency, CPU, Redis-side cost and RSS. Exits 0 whatever it finds.

    python bench/bench_exporter.py [--scrapes 300] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import http.client
import json
import os
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import memorywatch
from harness import LOOPBACK, ExporterProcess, free_port, master_with_replica, stop_pid, wait_until

PEER = "/usr/bin/prometheus-redis-exporter"
TICK = os.sysconf("SC_CLK_TCK")
WARMUP = 20
REDIS_SIDE_SCRAPES = 100


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime, all threads


def thread_cpu(pid: int) -> dict[int, float]:
    """Seconds on CPU of each live thread of ``pid``, in nanoseconds' resolution
    (/proc/PID/task/TID/schedstat). utime+stime (`cpu_seconds`) count 10 ms ticks: 5 % of the
    ~0.2 s a minute an exporter uses at one scrape a second. A thread that ends between two
    reads takes its time with it: compare the thread ids (`cpu_between`)."""
    seconds: dict[int, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            seconds[int(task.name)] = int((task / "schedstat").read_text().split()[0]) / 1e9
        except (OSError, ValueError, IndexError):
            continue  # ended while listed
    return seconds


def cpu_between(before: dict[int, float], after: dict[int, float]) -> float | None:
    """CPU seconds between two `thread_cpu` reads; None when a thread ended in between."""
    if not before.keys() <= after.keys():
        return None
    return sum(after[tid] - before.get(tid, 0.0) for tid in after)


def rss_mb(pid: int) -> float:
    match = re.search(r"VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
    return int(match.group(1)) / 1024 if match else float("nan")


class Scraper:
    """GET /metrics with a persistent HTTPConnection, or a new one per scrape."""

    def __init__(self, port: int, keepalive: bool) -> None:
        self.port, self.keepalive = port, keepalive
        self.conn = http.client.HTTPConnection(LOOPBACK, port, timeout=10)
        self.latencies: list[float] = []
        self.body = b""

    def get(self, record: bool = True) -> bool:
        """One scrape; returns whether the server would keep the connection open."""
        if not self.keepalive:
            self.conn.close()
        start = time.perf_counter()
        self.conn.request("GET", "/metrics")
        resp = self.conn.getresponse()
        self.body = resp.read()
        elapsed = time.perf_counter() - start
        if resp.status != 200:
            raise RuntimeError(f"port {self.port}: HTTP {resp.status}")
        if record:
            self.latencies.append(elapsed)
        return not resp.will_close

    def samples(self) -> int:
        return sum(1 for ln in self.body.decode().splitlines() if ln and not ln.startswith("#"))


def keeps_alive(port: int) -> bool:
    """Scrape once; whether the server keeps an HTTP/1.1 connection open afterwards."""
    scraper = Scraper(port, True)
    try:
        return scraper.get(record=False)
    finally:
        scraper.conn.close()


def cmdstats(conn: Any) -> tuple[int, int]:
    """(calls, usec) summed over INFO commandstats, without the replica's REPLCONF ACKs."""
    stats = conn.info("commandstats")
    rows = [v for k, v in stats.items() if k != "cmdstat_replconf"]
    return sum(int(v["calls"]) for v in rows), sum(int(v["usec"]) for v in rows)


def redis_cost(conn: Any, scrape: Callable[[], object], n: int) -> tuple[float, float]:
    """Redis commands and usec per scrape, less the cost of reading commandstats itself."""
    a, b = cmdstats(conn), cmdstats(conn)
    own = (b[0] - a[0], b[1] - a[1])
    before = cmdstats(conn)
    for _ in range(n):
        scrape()
    after = cmdstats(conn)
    return (after[0] - before[0] - own[0]) / n, (after[1] - before[1] - own[1]) / n


def start_peer(stack: contextlib.ExitStack, redis_url: str) -> tuple[int, subprocess.Popen[bytes]]:
    """Debian's prometheus-redis-exporter against ``redis_url`` on a free loopback port; the
    stack stops it by pid. Returns its port and process."""
    port = free_port()
    peer = subprocess.Popen(
        [PEER, "--redis.addr", redis_url, f"--web.listen-address={LOOPBACK}:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    stack.callback(stop_pid, peer)
    return port, peer


def peer_version() -> str:
    out = subprocess.run([PEER, "--version"], capture_output=True, text=True, timeout=10)
    match = re.search(r"Redis Metrics Exporter (\S+)", out.stdout + out.stderr)
    return match.group(1) if match else "unknown"


def verdict(ok: bool) -> str:
    return "target met" if ok else "target missed"


def run(scrapes: int, fleet: bool = True) -> dict[str, Any]:
    with contextlib.ExitStack() as stack:
        master, _replica = stack.enter_context(master_with_replica())
        conn = master.client()
        conn.execute_command("DEBUG", "POPULATE", "10000")
        for i in range(50):  # so commandstats, latencystats and keyspace hits exist
            conn.set(f"bench:{i}", "x" * i)
            conn.get(f"bench:{i}")
            conn.hset("bench:h", str(i), i)
            conn.lpush("bench:l", i)
        # Fleet metrics on (the default) costs memorywatch a few commands redis_exporter
        # does not run; --no-fleet compares Redis health alone, like for like.
        ours = ExporterProcess(
            args=["--redis-url", master.url, "--fleet" if fleet else "--no-fleet"]
        )
        stack.callback(ours.cleanup)
        ours.start()
        peer_port, peer = start_peer(stack, master.url)
        assert ours.proc is not None
        procs = {"memorywatch": ours.proc.pid, "prometheus-redis-exporter": peer.pid}

        def peer_up() -> bool:
            if peer.poll() is not None:
                raise RuntimeError(f"peer exited with {peer.returncode}")
            return keeps_alive(peer_port) or True

        wait_until(peer_up, 15, what="prometheus-redis-exporter /metrics")
        keepalive = keeps_alive(ours.port) and keeps_alive(peer_port)
        mine, theirs = Scraper(ours.port, keepalive), Scraper(peer_port, keepalive)
        for _ in range(WARMUP):
            mine.get(record=False)
            theirs.get(record=False)
        cpu0 = {n: cpu_seconds(p) for n, p in procs.items()}
        for _ in range(scrapes):
            mine.get()
            theirs.get()
        cpu1 = {n: cpu_seconds(p) for n, p in procs.items()}
        n_redis = min(REDIS_SIDE_SCRAPES, scrapes)
        results: dict[str, Any] = {
            "versions": {
                "python": sys.version.split()[0],
                "redis-server": conn.info("server")["redis_version"],
                "memorywatch": memorywatch.__version__,
                "prometheus-redis-exporter": peer_version(),
            },
            "scrapes": scrapes,
            "http": "keep-alive" if keepalive else "new connection per scrape (both)",
        }
        for name, scraper in (("memorywatch", mine), ("prometheus-redis-exporter", theirs)):
            cmds, usec = redis_cost(conn, functools.partial(scraper.get, record=False), n_redis)
            lat = sorted(scraper.latencies)
            results[name] = {
                "median_ms": statistics.median(lat) * 1e3,
                "p90_ms": statistics.quantiles(lat, n=10)[8] * 1e3,
                "cpu_ms_per_scrape": (cpu1[name] - cpu0[name]) / scrapes * 1e3,
                "redis_cmds_per_scrape": cmds,
                "redis_usec_per_scrape": usec,
                "samples_per_scrape": scraper.samples(),
                "rss_mb": rss_mb(procs[name]),
            }
        for s in (mine, theirs):
            s.conn.close()
        return results


def report(r: dict[str, Any]) -> None:
    for name, version in r["versions"].items():
        print(f"{name:<28}{version}")
    print(f"scrapes per exporter: {r['scrapes']} (interleaved), HTTP: {r['http']}\n")
    names = ("memorywatch", "prometheus-redis-exporter")
    rows = {
        "median_ms": "median latency ms",
        "p90_ms": "p90 latency ms",
        "cpu_ms_per_scrape": "CPU ms/scrape",
        "redis_cmds_per_scrape": "Redis cmds/scrape",
        "redis_usec_per_scrape": "Redis usec/scrape",
        "samples_per_scrape": "samples/scrape",
        "rss_mb": "RSS MB",
    }
    print(f"{'':<20}{names[0]:>14}{names[1]:>28}")
    for key, label in rows.items():
        print(f"{label:<20}{r[names[0]][key]:>14.2f}{r[names[1]][key]:>28.2f}")
    mw, peer = r["memorywatch"], r["prometheus-redis-exporter"]
    lat = mw["median_ms"] / peer["median_ms"]
    cpu = mw["cpu_ms_per_scrape"] / peer["cpu_ms_per_scrape"] if peer["cpu_ms_per_scrape"] else 1e9
    print()
    print(f"median latency ratio memorywatch/peer: {lat:.2f} (<= 1.0): {verdict(lat <= 1.0)}")
    print(f"CPU per scrape ratio memorywatch/peer: {cpu:.2f} (<= 1.0): {verdict(cpu <= 1.0)}")
    print(f"memorywatch RSS: {mw['rss_mb']:.1f} MB (< 60 MB): {verdict(mw['rss_mb'] < 60)}")
    print(f"prometheus-redis-exporter RSS: {peer['rss_mb']:.1f} MB (context)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scrapes", type=int, default=300, help="measured scrapes per exporter")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument(
        "--no-fleet", action="store_true", help="run memorywatch with --no-fleet (health only)"
    )
    args = parser.parse_args()
    if args.scrapes < 2:
        parser.error("--scrapes must be at least 2")
    results = run(args.scrapes, fleet=not args.no_fleet)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        report(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
