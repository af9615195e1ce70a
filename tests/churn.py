"""A day of a fleet, compressed: distinct lock resources, idempotency keys and sessions written
through both clients, then every key left without a TTL measured against docs/schema.md.

Used by ``tests/agent/test_agent_churn.py`` (asserts the bounds) and ``bench/bench_churn.py``
(also times the fleet scrape before and after).
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis

from memorywatch import schema
from memorywatch.agent import AgentState, ToolContext, aio

SYNC_THREADS = 4
ASYNC_TASKS = 64
KINDS = ("charge", "refund", "ship")
TOOLS = ("create_ticket", "send_email", "charge_card")


@dataclass
class Churn:
    """What was written, and by which client."""

    resources: int = 0
    one_argument: int = 0
    keys: int = 0
    sessions: int = 0
    by_client: Counter[str] = field(default_factory=Counter)


def _tool(ctx: ToolContext, n: int) -> int:
    return n


def _sync_part(url: str, namespace: str, start: int, stop: int) -> None:
    state = AgentState.from_url(url, namespace=namespace, instance_id=f"sync-{start}")
    try:
        for i in range(start, stop):
            if i % 2:
                with state.lock(KINDS[i % 3], f"order-{i}", ttl=30):
                    pass
            else:  # the one-argument form of the first README, one name per order
                with state.lock(f"order-{i}", ttl=30):
                    pass
            state.run_tool(TOOLS[i % 3], f"idem-{i}", _tool, i)
            state.history(f"session-{i}", user_id=f"user-{i % 5000}").append("user", "hi")
    finally:
        state.close()


async def _async_part(url: str, namespace: str, start: int, stop: int) -> None:
    async with aio.AgentState.from_url(
        url, namespace=namespace, instance_id="async", max_connections=ASYNC_TASKS
    ) as state:

        async def tool(ctx: ToolContext, n: int) -> int:
            return n

        async def one(i: int) -> None:
            if i % 2:
                async with state.lock(KINDS[i % 3], f"order-{i}", ttl=30):
                    pass
            else:
                async with state.lock(f"order-{i}", ttl=30):
                    pass
            await state.run_tool(TOOLS[i % 3], f"idem-{i}", tool, i)
            await state.history(f"session-{i}", user_id=f"user-{i % 5000}").append("user", "hi")

        queue = iter(range(start, stop))

        async def worker() -> None:
            for i in queue:
                await one(i)

        await asyncio.gather(*(worker() for _ in range(ASYNC_TASKS)))


def churn(url: str, namespace: str, count: int, progress: Callable[[str], Any] = print) -> Churn:
    """``count`` distinct lock resources (half in each call form), idempotency keys and
    sessions: the first half through the sync client (threads), the rest through asyncio."""
    half = count // 2
    step = half // SYNC_THREADS
    out = Churn()
    threads = [
        threading.Thread(
            target=_sync_part,
            args=(url, namespace, n * step, half if n == SYNC_THREADS - 1 else (n + 1) * step),
        )
        for n in range(SYNC_THREADS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    progress(f"sync client: {half} resources, keys and sessions")
    asyncio.run(_async_part(url, namespace, half, count))
    progress(f"asyncio client: {count - half} resources, keys and sessions")
    out.resources = out.keys = out.sessions = count
    out.one_argument = (count + 1) // 2
    out.by_client.update(sync=half, asyncio=count - half)
    return out


def baseline(url: str, namespace: str) -> None:
    """The fleet before the churn: every kind, form and tool used once, 1,000 sessions."""
    state = AgentState.from_url(url, namespace=namespace, instance_id="baseline")
    for kind in KINDS:
        with state.lock(kind, "baseline"):
            pass
    with state.lock("order-0"):
        pass
    for tool in TOOLS:
        state.run_tool(tool, f"baseline-{tool}", _tool, 0)
    for i in range(1000):
        state.history(f"baseline-{i}").append("user", "hi")
    state.close()


@dataclass
class Unbounded:
    """Keys without a TTL, by kind of key, and the size of each."""

    keys: dict[str, int] = field(default_factory=dict)
    """key (namespace stripped) -> members or fields."""

    def kinds(self) -> set[str]:
        return {key.split(":", 2)[-1].split(":")[0] for key in self.keys}


def keys_without_ttl(client: redis.Redis, namespace: str) -> Unbounded:
    found = Unbounded()
    for key in client.scan_iter(f"{namespace}:*", count=5000):
        if client.pttl(key) != -1:
            continue
        kind = client.type(key)
        size = {
            "hash": client.hlen,
            "zset": client.zcard,
            "set": client.scard,
            "list": client.llen,
        }.get(kind, lambda _key: 1)(key)
        found.keys[key.removeprefix(f"{namespace}:")] = int(size)
    return found


def bounds(layout: schema.Schema, cap: int, sessions: int) -> dict[str, int]:
    """docs/schema.md's bound of each key that may live without a TTL (empty indexes are
    deleted by Redis, so a missing key is within its bound)."""
    hist_fields = (cap + 1) * (len(schema.LOCK_WAIT_BUCKETS) + 2)
    tool_fields = (cap + 1) * 3
    out = {"schema": 2}
    for shard in range(layout.shards):
        prefix = layout.prefix(shard).removeprefix(f"{layout.namespace}:")
        out[f"{prefix}fence"] = 1
        out[f"{prefix}names:lock"] = cap
        out[f"{prefix}names:tool"] = cap
        out[f"{prefix}sessions"] = sessions
        out[f"{prefix}locks:exp"] = 0  # nothing is held after the churn
        out[f"{prefix}locks:since"] = 0
        out[f"{prefix}tools:inprog"] = 0  # every call completed
        for family in schema.COUNTER_FAMILIES:
            out[f"{prefix}stats:{family}"] = tool_fields if family.startswith("tool") else cap + 1
        out[f"{prefix}stats:{schema.FAMILY_LOCK_WAIT}"] = hist_fields
        out[f"{prefix}stats:{schema.FAMILY_TURN_DURATION}"] = len(schema.TURN_BUCKETS) + 2
    return out
