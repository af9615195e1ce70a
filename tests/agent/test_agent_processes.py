"""Real processes: races for the same idempotency keys, and SIGKILL of a holder mid-tool."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from typing import Any

import pytest
import redis
from agent_helpers import counters

from harness import RedisServer, wait_until
from memorywatch import schema
from memorywatch.agent import AgentState, ToolContext, ToolInProgress, ToolOptions

EFFECTS = "effects"  # outside the namespace: the "external system" that must see one write per key
TRIALS = 500


def _racer(url: str, namespace: str, name: str, start: Any, out: Any) -> None:
    state = AgentState.from_url(url, namespace=namespace, instance_id=name)
    side = redis.Redis.from_url(url, decode_responses=True)

    def effect(ctx: ToolContext, i: int) -> str:
        side.rpush(f"{namespace}-{EFFECTS}", f"{i}|{name}|{ctx.fencing_token}")
        return name

    start.wait()
    winners: dict[int, str] = {}
    for i in range(TRIALS):
        winners[i] = state.run_tool(
            "pay", f"order-{i}", effect, i, tool_options=ToolOptions(wait=10)
        )
    out.put((name, winners))
    state.close()


@pytest.mark.slow
def test_two_processes_race_for_1000_calls_one_side_effect_each(
    server: RedisServer, raw: redis.Redis, namespace: str
) -> None:
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Event()
    out = ctx.Queue()
    procs = [
        ctx.Process(target=_racer, args=(server.url, namespace, f"p{n}", start, out))
        for n in range(2)
    ]
    for proc in procs:
        proc.start()
    try:
        start.set()
        results = dict(out.get(timeout=120) for _ in procs)
    finally:
        for proc in procs:
            proc.join(30)
            if proc.is_alive():
                os.kill(proc.pid, signal.SIGKILL)  # type: ignore[arg-type]
    effects = raw.lrange(f"{namespace}-{EFFECTS}", 0, -1)
    by_key: dict[str, list[str]] = {}
    fences: list[int] = []
    for entry in effects:
        i, who, fence = entry.split("|")
        by_key.setdefault(i, []).append(who)
        fences.append(int(fence))
    assert len(set(fences)) == len(fences), "two claims were given one fencing token"
    assert len(by_key) == TRIALS
    assert all(len(v) == 1 for v in by_key.values()), "a side effect ran twice"
    # both callers of every key got the winner's recorded result
    for i in range(TRIALS):
        assert results["p0"][i] == results["p1"][i] == by_key[str(i)][0]
    assert counters(raw, namespace, schema.FAMILY_TOOL_EXECUTIONS) == {"pay|completed": TRIALS}
    suppressed = counters(raw, namespace, schema.FAMILY_TOOL_DUPLICATES_SUPPRESSED)
    assert suppressed == {"pay": TRIALS}  # every loser was answered from the record


def _killed_holder(url: str, namespace: str) -> None:
    state = AgentState.from_url(url, namespace=namespace, instance_id="doomed")
    side = redis.Redis.from_url(url, decode_responses=True)
    lease = state.lock("order-9", ttl=1)
    side.rpush(f"{namespace}-lock", lease.fencing_token)

    def hangs(ctx: ToolContext) -> None:
        side.rpush(f"{namespace}-tool", ctx.fencing_token)
        time.sleep(3600)

    state.run_tool("ship", "ship-9", hangs, tool_options=ToolOptions(deadline=1))


@pytest.mark.slow
def test_sigkill_mid_tool_then_takeover_with_higher_fencing_tokens(
    server: RedisServer, raw: redis.Redis, namespace: str
) -> None:
    ctx = multiprocessing.get_context("spawn")
    proc = ctx.Process(target=_killed_holder, args=(server.url, namespace))
    proc.start()
    try:
        wait_until(lambda: raw.llen(f"{namespace}-tool") == 1, timeout=30, what="tool started")
    finally:
        os.kill(proc.pid, signal.SIGKILL)  # type: ignore[arg-type]
        proc.join(10)
    old_lock = int(raw.lindex(f"{namespace}-lock", 0))
    old_tool = int(raw.lindex(f"{namespace}-tool", 0))
    state = AgentState.from_url(server.url, namespace=namespace, instance_id="survivor")
    sch = state.schema
    # the record tells that the side effect started and did not finish
    record = raw.hgetall(sch.tool("ship-9"))
    assert record["state"] == "in_progress" and record["instance"] == "doomed"
    with pytest.raises(ToolInProgress):
        state.run_tool("ship", "ship-9", lambda c: "never", tool_options=ToolOptions(wait=0))
    # after the TTL / deadline, takeover with strictly higher tokens
    with state.lock("order-9", ttl=5, wait=5) as lease:
        assert lease.fencing_token > old_lock

    def finish(c: ToolContext) -> int:
        assert c.reclaimed
        return c.fencing_token

    new_tool = state.run_tool(
        "ship", "ship-9", finish, tool_options=ToolOptions(wait=5, deadline=5)
    )
    assert new_tool > old_tool
    assert counters(raw, namespace, schema.FAMILY_TOOL_RECLAIMS) == {"ship": 1}
    assert raw.hget(sch.tool("ship-9"), "state") == "completed"
    state.close()
