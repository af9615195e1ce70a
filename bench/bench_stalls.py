"""3,000 clients stalled mid-request beside a scrape: memorywatch against the peer, same run.

Not a test. Against each exporter in turn (memorywatch, then prometheus-redis-exporter):
open `--stalled` connections that each send a partial request line (`GET /metr`) and wait;
scrape /metrics beside them (a new connection each time); read the RSS; then wait up to the
head deadline + `--slack` for the server to close each stalled connection. Prints the scrape
latency, RSS and how many stalled connections were closed, and when. Exits 0 whatever it finds.

    python bench/bench_stalls.py [--stalled 3000] [--scrapes 20] [--slack 2]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import resource
import selectors
import socket
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from bench_exporter import rss_mb, start_peer, verdict
from harness import LOOPBACK, ExporterProcess, redis_server, wait_until
from memorywatch.exporter.http import HEADER_TIMEOUT


def stall(port: int, n: int) -> list[tuple[socket.socket, float]]:
    opened = []
    for _ in range(n):
        sock = socket.create_connection((LOOPBACK, port), timeout=5)
        sock.sendall(b"GET /metr")
        opened.append((sock, time.monotonic()))
    return opened


def scrape(port: int) -> tuple[int, float]:
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=10)
    started = time.perf_counter()
    try:
        conn.request("GET", "/metrics")
        response = conn.getresponse()
        response.read()
        return response.status, time.perf_counter() - started
    except (OSError, http.client.HTTPException):
        return 0, time.perf_counter() - started
    finally:
        conn.close()


def closed_within(opened: list[tuple[socket.socket, float]], wait: float) -> list[float]:
    """Seconds from open to EOF of every stalled connection the server closed within
    `wait` seconds of its open."""
    selector = selectors.DefaultSelector()
    for sock, at in opened:
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ, at)
    ends: list[float] = []
    deadline = max(at for _, at in opened) + wait
    while selector.get_map() and time.monotonic() < deadline:
        for key, _ in selector.select(max(0.0, deadline - time.monotonic())):
            sock: Any = key.fileobj
            with contextlib.suppress(OSError):
                if sock.recv(1024):
                    continue  # an answer (a 408, say); wait for the EOF
            ends.append(time.monotonic() - key.data)
            selector.unregister(sock)
    selector.close()
    return ends


def measure(name: str, port: int, pid: int, args: argparse.Namespace) -> dict[str, Any]:
    for _ in range(3):
        scrape(port)
    opened = stall(port, args.stalled)
    results = [scrape(port) for _ in range(args.scrapes)]
    latencies = [took for status, took in results if status == 200]
    if args.verbose:
        print(name, " ".join(f"{t * 1e3:.0f}" for t in latencies))
    rss = rss_mb(pid)
    ends = closed_within(opened, HEADER_TIMEOUT + args.slack)
    for sock, _ in opened:
        sock.close()
    return {
        "name": name,
        "ok": len(latencies),
        "median": statistics.median(latencies) * 1e3 if latencies else float("nan"),
        "max": max(latencies) * 1e3 if latencies else float("nan"),
        "rss": rss,
        "closed": len(ends),
        "last_close": max(ends) if ends else float("nan"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stalled", type=int, default=3000)
    parser.add_argument("--scrapes", type=int, default=20)
    parser.add_argument("--slack", type=float, default=2.0, help="seconds past the deadline")
    parser.add_argument("--verbose", action="store_true", help="print every scrape latency")
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = args.stalled + 1000
    if soft != resource.RLIM_INFINITY and soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))
    rows = []
    with contextlib.ExitStack() as stack:
        server = stack.enter_context(redis_server())
        ours = ExporterProcess(["--redis-url", server.url, "--no-fleet"])
        stack.callback(ours.cleanup)
        ours.start()
        assert ours.proc is not None
        rows.append(measure("memorywatch", ours.port, ours.proc.pid, args))
        peer_port, peer = start_peer(stack, server.url)
        wait_until(lambda: scrape(peer_port)[0] == 200, 15, what="prometheus-redis-exporter")
        rows.append(measure("prometheus-redis-exporter", peer_port, peer.pid, args))
    print(f"{args.stalled} connections stalled after 'GET /metr', {args.scrapes} scrapes beside")
    print(f"them (new connection each); head deadline {HEADER_TIMEOUT:g} s + {args.slack:g} s\n")
    print(f"{'':<32}{'memorywatch':>14}{'peer':>14}")
    labels = {
        "ok": "scrapes answered 200",
        "median": "scrape latency median ms",
        "max": "scrape latency max ms",
        "rss": "RSS MB (while stalled)",
        "closed": "stalled closed by deadline+slack",
        "last_close": "last close after open, s",
    }
    for key, label in labels.items():
        print(f"{label:<32}{rows[0][key]:>14.1f}{rows[1][key]:>14.1f}")
    mw, peer_row = rows[0], rows[1]
    ratio = mw["max"] / peer_row["max"] if peer_row["ok"] else float("nan")
    print(f"\nscrape max latency ratio memorywatch/peer: {ratio:.2f}")
    ok = mw["ok"] == args.scrapes and mw["max"] < 100
    print(f"every scrape 200 within 100 ms: {verdict(ok)}")
    print(f"RSS {mw['rss']:.0f} MB (< 150 MB): {verdict(mw['rss'] < 150)}")
    print(f"all {args.stalled} closed at the deadline: {verdict(mw['closed'] == args.stalled)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
