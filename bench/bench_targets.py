"""Many targets through `/scrape`: memorywatch against prometheus-redis-exporter, same run.

Not a test. Starts `--targets` redis-servers on loopback, both exporters, and one keep-alive
client per target per exporter (as one Prometheus does); every round, all clients scrape
their own target at once, and the round lasts until the slowest answers. Rounds alternate
between the exporters. Prints round latency (p50, p99), CPU per target-scrape and RSS, with
the ratios memorywatch/peer. Exits 0 whatever it finds.

    python bench/bench_targets.py [--targets 40] [--rounds 100] [--pause 0.0]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from bench_exporter import cpu_seconds, rss_mb, start_peer, verdict
from harness import LOOPBACK, ExporterProcess, RedisServer, wait_until

WARMUP = 5


class Fleet:
    """One keep-alive client per target, each in its own thread, released together per round."""

    def __init__(self, port: int, targets: list[int]) -> None:
        self.paths = [f"/scrape?target=redis://{LOOPBACK}:{p}" for p in targets]
        self.conns = [http.client.HTTPConnection(LOOPBACK, port, timeout=30) for _ in targets]
        self.rounds: list[float] = []
        self.errors = 0

    def _one(self, index: int) -> None:
        conn = self.conns[index]
        try:
            conn.request("GET", self.paths[index], headers={"Accept-Encoding": "gzip"})
            resp = conn.getresponse()
            body = resp.read()
            if resp.status != 200 or not body:
                self.errors += 1
        except (OSError, http.client.HTTPException):
            self.errors += 1
            conn.close()

    def round(self, record: bool = True) -> None:
        threads = [threading.Thread(target=self._one, args=(i,)) for i in range(len(self.paths))]
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if record:
            self.rounds.append(time.perf_counter() - start)

    def close(self) -> None:
        for conn in self.conns:
            conn.close()


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=100, help="measured rounds per exporter")
    parser.add_argument("--pause", type=float, default=0.0, help="seconds between rounds")
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        servers = [RedisServer() for _ in range(args.targets)]
        for server in servers:
            stack.callback(server.cleanup)
            server.start(wait=False)
        for server in servers:
            server.wait_ready()
            conn = server.client()
            for i in range(20):  # commandstats and a keyspace worth reporting
                conn.set(f"bench:{i}", "x" * i)
                conn.get(f"bench:{i}")
        ours = ExporterProcess(
            args=["--redis-url", servers[0].url, "--no-fleet", "--allow-target", f"{LOOPBACK}:*"]
        )
        stack.callback(ours.cleanup)
        ours.start()
        peer_port, peer = start_peer(stack, servers[0].url)

        def peer_up() -> bool:
            with contextlib.suppress(OSError):
                http.client.HTTPConnection(LOOPBACK, peer_port, timeout=1).connect()
                return True
            return False

        wait_until(peer_up, 15, what="prometheus-redis-exporter")
        assert ours.proc is not None
        ports = [s.port for s in servers]
        fleets = {"memorywatch": Fleet(ours.port, ports), "peer": Fleet(peer_port, ports)}
        pids = {"memorywatch": ours.proc.pid, "peer": peer.pid}
        for _ in range(WARMUP):
            for fleet in fleets.values():
                fleet.round(record=False)
        cpu = dict.fromkeys(fleets, 0.0)
        for _ in range(args.rounds):
            for name, fleet in fleets.items():
                before = cpu_seconds(pids[name])
                fleet.round()
                cpu[name] += cpu_seconds(pids[name]) - before
                time.sleep(args.pause)
        scrapes = args.rounds * args.targets
        rows = {}
        for name, fleet in fleets.items():
            rows[name] = {
                "p50": statistics.median(fleet.rounds) * 1e3,
                "p99": p99(fleet.rounds) * 1e3,
                "cpu": cpu[name] / scrapes * 1e3,
                "rss": rss_mb(pids[name]),
                "errors": fleet.errors,
            }
            fleet.close()
    print(f"{args.targets} targets, {args.rounds} rounds each (alternating), keep-alive, gzip")
    print(f"{'':<28}{'memorywatch':>14}{'peer':>14}")
    labels = {
        "p50": "round latency p50 ms",
        "p99": "round latency p99 ms",
        "cpu": "CPU ms/target-scrape",
        "rss": "RSS MB",
        "errors": "failed scrapes",
    }
    for key, label in labels.items():
        print(f"{label:<28}{rows['memorywatch'][key]:>14.2f}{rows['peer'][key]:>14.2f}")
    mw, pr = rows["memorywatch"], rows["peer"]
    lat, cpu_ratio = mw["p99"] / pr["p99"], mw["cpu"] / pr["cpu"]
    print(f"\nround p99 ratio memorywatch/peer: {lat:.2f} (<= 1.0): {verdict(lat <= 1.0)}")
    print(f"CPU per target-scrape ratio: {cpu_ratio:.2f} (<= 0.8): {verdict(cpu_ratio <= 0.8)}")
    print(f"memorywatch RSS {mw['rss']:.1f} MB (< 100 MB): {verdict(mw['rss'] < 100)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
