"""Benchmark of the agent SDK against its peers, in one run on one private redis-server.

    python bench/bench_agent.py [--cycles 3000] [--rounds 3]

Prints (1) lock acquire+release cycles per second of memorywatch's lock (counters and fencing
on) next to redis-py ``Lock`` and python-redis-lock, as ratios; (2) round trips per
``run_tool`` happy path counted from ``INFO commandstats`` deltas; (3) append and load of a
1,000-message history. Only loopback; the server is stopped by its pid.
"""

from __future__ import annotations

import argparse
import re
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import redis
import redis_lock

from memorywatch.agent import AgentState, ToolContext, _core

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def start_redis(workdir: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    exe = shutil.which("redis-server") or "/usr/bin/redis-server"
    proc = subprocess.Popen(
        [exe, "--port", str(port), "--bind", LOOPBACK, "--save", "", "--appendonly", "no"],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            if redis.Redis(host=LOOPBACK, port=port, socket_timeout=1).ping():
                return proc, port
        except redis.ConnectionError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise
            time.sleep(0.02)


def rate(fn: Callable[[], None], cycles: int) -> float:
    for _ in range(50):  # warm up: connections made, scripts loaded
        fn()
    started = time.perf_counter()
    for _ in range(cycles):
        fn()
    return cycles / (time.perf_counter() - started)


def bench_locks(url: str, cycles: int, rounds: int) -> None:
    state = AgentState.from_url(url, namespace="bench", instance_id="bench")
    client = redis.Redis.from_url(url)

    def ours() -> None:
        with state.lock("bench-ours", ttl=30, wait=1):
            pass

    def redis_py() -> None:
        with client.lock("bench-redis-py", timeout=30, blocking_timeout=1):
            pass

    def python_redis_lock() -> None:
        with redis_lock.Lock(client, "bench-prl", expire=30):
            pass

    contenders = {
        "memorywatch": ours,
        "redis-py Lock": redis_py,
        "python-redis-lock": python_redis_lock,
    }
    results: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(rounds):  # interleaved, so drift of the machine hits all alike
        for name, fn in contenders.items():
            results[name].append(rate(fn, cycles))
    medians = {name: statistics.median(v) for name, v in results.items()}
    print(f"lock acquire+release cycles/s (median of {rounds} x {cycles}, ttl 30 s):")
    for name, value in medians.items():
        print(f"  {name:<20} {value:8.0f}/s")
    ours_rate = medians["memorywatch"]
    print(f"  ratio vs redis-py Lock:       {ours_rate / medians['redis-py Lock']:.2f}x")
    print(f"  ratio vs python-redis-lock:   {ours_rate / medians['python-redis-lock']:.2f}x")
    state.close()
    client.close()


SCRIPT_COMMANDS = {
    cmd.lower()
    for text in _core.SCRIPT_TEXTS.values()
    for cmd in re.findall(r"redis\.call\('([A-Z]+)'", text)
}


def bench_round_trips(url: str, calls: int) -> None:
    state = AgentState.from_url(url, namespace="bench-rt", instance_id="bench")
    admin = redis.Redis.from_url(url, decode_responses=True)

    def tool(ctx: ToolContext, n: int) -> dict[str, int]:
        return {"n": n}

    state.run_tool("warmup", "warmup", tool, 0)  # scripts loaded, connection made
    admin.config_resetstat()
    for i in range(calls):
        state.run_tool("create_ticket", f"key-{i}", tool, i)
    stats = {k.removeprefix("cmdstat_"): v["calls"] for k, v in admin.info("commandstats").items()}
    stats.pop("config|resetstat", None)
    stats.pop("info", None)
    # commandstats also counts the commands a script runs; those are not round trips
    client_sent = {k: v for k, v in stats.items() if k.split("|")[0] not in SCRIPT_COMMANDS}
    trips = sum(client_sent.values()) / calls
    print(f"run_tool happy path: {trips:.2f} round trips per call ({calls} calls; target <= 2)")
    print(f"  client commands: {client_sent}")
    inside = {k: v for k, v in stats.items() if k not in client_sent}
    print(
        f"  commands run inside the scripts, per call: "
        f"{ {k: v / calls for k, v in sorted(inside.items())} }"
    )
    state.close()
    admin.close()


def bench_history(url: str, messages: int) -> None:
    state = AgentState.from_url(url, namespace="bench-h", instance_id="bench")
    h = state.history("long-session")
    text = "A message of typical length for a chat turn, about a hundred characters long......"
    started = time.perf_counter()
    for i in range(messages):
        h.append("user" if i % 2 else "assistant", text)
    appended = time.perf_counter() - started
    loads = []
    for _ in range(20):
        started = time.perf_counter()
        loaded = h.load()
        loads.append(time.perf_counter() - started)
    assert len(loaded) == messages
    print(f"history of {messages} messages:")
    print(f"  append: {appended * 1000:.1f} ms total, {appended / messages * 1e6:.0f} us each")
    print(f"  load:   {statistics.median(loads) * 1000:.2f} ms (median of 20)")
    state.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=1000)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="mw-bench-"))
    proc, port = start_redis(workdir)
    url = f"redis://{LOOPBACK}:{port}"
    try:
        print(
            f"redis-server {redis.Redis.from_url(url).info('server')['redis_version']} "
            f"on {url}, redis-py {redis.__version__}"
        )
        bench_locks(url, args.cycles, args.rounds)
        bench_round_trips(url, args.calls)
        bench_history(url, args.messages)
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
