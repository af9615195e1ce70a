"""AgentStateSession against openai-agents' own RedisSession, in one run on one redis-server.

    python bench/bench_sessions.py [--ops 200] [--rounds 15]

What a turn does to its session: ``add_items`` of two items (the user's message and the
answer) and ``get_items`` of a 20-item history. memorywatch runs as in production: inside a
held run lock of the session (renewed in the background, as ``run_once`` holds it), with the
OpenTelemetry SDK's metrics on (a MeterProvider with a reader) and the fleet counters in Redis;
RedisSession with a TTL, on a client with the same pool and timeouts. Many short rounds, alternating which goes first; prints p50/p99 of
every call and the median of the per-round p50 ratios (target: at most 1.2x). Only loopback;
the server is stopped by its pid.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import redis.asyncio as aredis
from agents.extensions.memory import RedisSession
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from bench_agent import start_redis
from memorywatch.agent import aio
from memorywatch.integrations.openai_agents import RUN_LOCK, AgentStateSession

TURN: list[Any] = [
    {"role": "user", "content": "Book a table for two at eight, near the station, please."},
    {
        "id": "msg_0",
        "type": "message",
        "role": "assistant",
        "status": "completed",
        "content": [
            {"type": "output_text", "text": "Booked: table #7 at 20:00.", "annotations": []}
        ],
    },
]
HISTORY = TURN * 10  # 20 items

Op = Callable[[], Awaitable[Any]]


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def timed(op: Op, n: int) -> list[float]:
    for _ in range(10):  # warm: connections made, scripts loaded
        await op()
    out = []
    for _ in range(n):
        start = time.perf_counter()
        await op()
        out.append(time.perf_counter() - start)
    return out


async def run(url: str, ops: int, rounds: int) -> None:
    reader = InMemoryMetricReader()
    state = aio.AgentState.from_url(
        url, namespace="bench", meter_provider=MeterProvider(metric_readers=[reader])
    )
    # the peer on the client settings AgentState.from_url uses: a blocking pool of 50 with a 1 s
    # wait for a connection, 5 s socket timeouts (what a production client sets)
    pool = aredis.BlockingConnectionPool.from_url(
        url, max_connections=50, timeout=1.0, socket_timeout=5.0
    )
    client = aredis.Redis(connection_pool=pool)
    samples: dict[tuple[str, str], list[float]] = {}
    ratios: dict[str, list[float]] = {"add_items": [], "get_items": [], "turn (add+get)": []}
    for n in range(rounds):
        ours_add = AgentStateSession(f"add-{n}", state)
        theirs_add = RedisSession(f"add-{n}", redis_client=client, ttl=7 * 24 * 3600)
        ours_get = AgentStateSession(f"get-{n}", state)
        theirs_get = RedisSession(f"get-{n}", redis_client=client, ttl=7 * 24 * 3600)
        await ours_get.add_items(HISTORY)
        await theirs_get.add_items(HISTORY)
        contenders: list[tuple[str, dict[str, Op]]] = [
            (
                "memorywatch",
                {
                    "add_items": lambda s=ours_add: s.add_items(TURN),
                    "get_items": lambda s=ours_get: s.get_items(),
                },
            ),
            (
                "RedisSession",
                {
                    "add_items": lambda s=theirs_add: s.add_items(TURN),
                    "get_items": lambda s=theirs_get: s.get_items(),
                },
            ),
        ]
        if n % 2:
            contenders.reverse()
        p50: dict[tuple[str, str], float] = {}
        for who, calls in contenders:
            for what, op in calls.items():
                if who == "memorywatch":
                    async with state.lock(RUN_LOCK, f"{what[:3]}-{n}", renew=True):
                        got = await timed(op, ops)
                else:
                    got = await timed(op, ops)
                samples.setdefault((who, what), []).extend(got)
                p50[(who, what)] = statistics.median(got)
        for what in ("add_items", "get_items"):
            ratios[what].append(p50[("memorywatch", what)] / p50[("RedisSession", what)])
        turn = {who: p50[(who, "add_items")] + p50[(who, "get_items")] for who, _ in contenders}
        ratios["turn (add+get)"].append(turn["memorywatch"] / turn["RedisSession"])
    assert reader.get_metrics_data() is not None  # the metrics were on
    print(f"session calls ({rounds} interleaved rounds x {ops} calls; history of 20 items):")
    for (who, what), got in sorted(samples.items()):
        print(
            f"  {what:<9} {who + ':':<13} p50 {pct(got, 0.5) * 1e6:7.0f} us"
            f"   p99 {pct(got, 0.99) * 1e6:7.0f} us"
        )
    for what, values in ratios.items():
        quartiles = statistics.quantiles(values, n=4)
        print(
            f"  ratio {what}: {statistics.median(values):.2f}x p50 (memorywatch / RedisSession;"
            f" rounds' quartiles {quartiles[0]:.2f}-{quartiles[2]:.2f}; target <= 1.2x)"
        )
    await client.aclose()
    await state.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ops", type=int, default=200, help="calls per contender per round")
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    if args.ops < 10 or args.rounds < 2:
        parser.error("--ops must be >= 10 and --rounds >= 2")
    with tempfile.TemporaryDirectory() as tmp:
        proc, port = start_redis(Path(tmp))
        try:
            asyncio.run(run(f"redis://127.0.0.1:{port}", args.ops, args.rounds))
        finally:
            proc.terminate()
            proc.wait(10)


if __name__ == "__main__":
    main()
