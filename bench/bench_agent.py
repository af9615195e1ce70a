"""Benchmark of the agent SDK against its peers, in one run on one private redis-server.

    python bench/bench_agent.py [--cycles 500] [--rounds 21]

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

from memorywatch.agent import AgentState, ToolContext, _values

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


def measure(fn: Callable[[], None], cycles: int) -> tuple[float, float]:
    """(cycles per second of wall time, client CPU microseconds per cycle)."""
    for _ in range(20):  # warm: connection made, scripts loaded
        fn()
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(cycles):
        fn()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return cycles / wall, cpu / cycles * 1e6


def bench_locks(url: str, cycles: int, rounds: int) -> None:
    """Many short interleaved rounds, in alternating order, and the median of the per-round
    ratios: on a shared VM the speed drifts by 2x within a minute, which one long run per
    contender turns into a 2x error in the ratio."""
    state = AgentState.from_url(url, namespace="bench", instance_id="bench")
    client = redis.Redis.from_url(url)

    def ours() -> None:
        with state.lock("bench", "ours", ttl=30, wait=1):
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
    rates: dict[str, list[float]] = {name: [] for name in contenders}
    cpus: dict[str, list[float]] = {name: [] for name in contenders}
    for round_no in range(rounds):
        order = list(contenders.items())
        for name, fn in order if round_no % 2 else reversed(order):
            per_second, cpu = measure(fn, cycles)
            rates[name].append(per_second)
            cpus[name].append(cpu)
    print(f"lock acquire+release (median of {rounds} interleaved rounds x {cycles}, ttl 30 s):")
    for name in contenders:
        print(
            f"  {name:<20} {statistics.median(rates[name]):8.0f}/s"
            f"   client CPU {statistics.median(cpus[name]):6.0f} us/cycle"
        )
    for peer in ("redis-py Lock", "python-redis-lock"):
        ratios = sorted(a / b for a, b in zip(rates["memorywatch"], rates[peer], strict=True))
        quartiles = statistics.quantiles(ratios, n=4)
        print(
            f"  ratio vs {peer + ':':<19} {statistics.median(ratios):.2f}x "
            f"(per-round quartiles {quartiles[0]:.2f}-{quartiles[2]:.2f})"
        )
    state.close()
    client.close()


SCRIPT_COMMANDS = {
    cmd.lower()
    for text in _values.SCRIPT_TEXTS.values()
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
    parser.add_argument("--cycles", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=21)
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
