"""asyncio parity: the same schema, scripts, counters and errors as the sync client."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import redis
from agent_helpers import counters

from harness import RedisServer
from memorywatch import schema
from memorywatch.agent import (
    AgentState,
    FingerprintMismatch,
    LockLost,
    LockTimeout,
    StateMiss,
    StateUnavailable,
    ToolContext,
    ToolInProgress,
    ToolOptions,
    aio,
)


def run(coro_fn: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(coro_fn())  # type: ignore[arg-type]


def test_history_and_miss_parity(server: RedisServer, raw: redis.Redis, namespace: str) -> None:
    async def main() -> None:
        state = aio.AgentState.from_url(server.url, namespace=namespace)
        h = state.history("s1", user_id="u1")
        assert await h.load() == []
        await h.append("user", "hi")
        assert [m["text"] for m in await h.load()] == ["hi"]
        # the sync client reads what the async one wrote: one schema
        sync = AgentState.from_url(server.url, namespace=namespace)
        assert [m["text"] for m in sync.history("s1").load()] == ["hi"]
        sync.close()
        await state.preferences("u1").set("language", "en")
        assert await state.preferences("u1").get("language") == "en"
        raw.delete(state.schema.history("s1"))
        with pytest.raises(StateMiss):
            await h.load()
        assert await state.forget_user("u1") >= 2
        async with state.turn("s1"):
            pass
        await state.aclose()

    run(main)
    assert counters(raw, namespace, schema.FAMILY_STATE_MISSES) == {"history": 1}
    assert not raw.exists(schema.Schema(namespace).preferences("u1"))


def test_lock_parity(server: RedisServer, raw: redis.Redis, namespace: str) -> None:
    async def main() -> None:
        state = aio.AgentState.from_url(server.url, namespace=namespace)
        async with state.lock("o", ttl=5) as lease:
            first = lease.fencing_token
            with pytest.raises(LockTimeout):
                await state.lock("o", ttl=5, wait=0.1)
        lease2 = await state.lock("o", ttl=5)
        assert lease2.fencing_token > first
        await lease2.release()
        with pytest.raises(LockLost):
            async with state.lock("o", ttl=0.1):
                while raw.exists(state.schema.lock("o")):
                    await asyncio.sleep(0.02)
        async with state.lock("renewed", ttl=1.0, renew=True):
            for _ in range(40):  # two TTLs
                assert raw.exists(state.schema.lock("renewed"))
                await asyncio.sleep(0.05)
        await state.aclose()

    run(main)
    assert counters(raw, namespace, schema.FAMILY_LOCK_CONTENDED) == {"o": 1}
    assert counters(raw, namespace, schema.FAMILY_LOCK_TIMEOUTS) == {"o": 1}
    assert counters(raw, namespace, schema.FAMILY_LOCKS_LOST) == {"o": 1}


def test_extend_starts_a_new_lease(server: RedisServer, raw: redis.Redis, namespace: str) -> None:
    async def main() -> None:
        state = aio.AgentState.from_url(server.url, namespace=namespace)
        since_key, exp_key = state.schema.locks_since("m"), state.schema.locks_expiry("m")
        member = schema.lock_member("m", "m")
        async with state.lock("m", ttl=5) as lease:
            since0 = raw.zscore(since_key, member)
            assert since0 is not None
            await asyncio.sleep(0.25)
            await lease.extend(ttl=2)
            since1, exp1 = raw.zscore(since_key, member), raw.zscore(exp_key, member)
            assert since1 is not None and exp1 is not None
            assert since1 >= since0 + 200 and exp1 - since1 == 2000
        assert raw.zscore(since_key, member) is None and raw.zscore(exp_key, member) is None
        await state.aclose()

    run(main)


def test_run_tool_parity(server: RedisServer, raw: redis.Redis, namespace: str) -> None:
    calls: list[int] = []

    async def main() -> None:
        state = aio.AgentState.from_url(server.url, namespace=namespace)
        gate = asyncio.Event()

        async def tool(ctx: ToolContext, x: int) -> dict[str, int]:
            calls.append(ctx.fencing_token)
            await gate.wait()
            return {"x": x}

        first = asyncio.create_task(state.run_tool("t", "k", tool, 1))
        while not calls:
            await asyncio.sleep(0.005)
        with pytest.raises(ToolInProgress):
            await state.run_tool("t", "k", tool, 1, tool_options=ToolOptions(wait=0))
        gate.set()
        assert await first == {"x": 1}
        # concurrent replays: all answered from the record
        replies = await asyncio.gather(*(state.run_tool("t", "k", tool, 1) for _ in range(5)))
        assert replies == [{"x": 1}] * 5
        with pytest.raises(FingerprintMismatch):
            await state.run_tool("t", "k", tool, 2)
        assert (await state.ready()).ready
        await state.heartbeat()
        await state.aclose()

    run(main)
    assert calls == [1]
    assert counters(raw, namespace, schema.FAMILY_TOOL_DUPLICATES_SUPPRESSED) == {"t": 5}
    assert counters(raw, namespace, schema.FAMILY_TOOL_EXECUTIONS) == {"t|completed": 1}


def test_concurrent_call_waits_for_the_first_answer_by_default(
    server: RedisServer, raw: redis.Redis, namespace: str
) -> None:
    """A refresh landing while the first call runs gets its answer (default wait), and one
    whose wait runs out first gets ToolInProgress."""
    calls: list[int] = []

    async def main() -> None:
        state = aio.AgentState.from_url(server.url, namespace=namespace)
        gate = asyncio.Event()

        async def tool(ctx: ToolContext) -> str:
            calls.append(ctx.fencing_token)
            await gate.wait()
            return "first answer"

        first = asyncio.create_task(state.run_tool("pay", "k", tool))
        while not calls:
            await asyncio.sleep(0.005)
        started = asyncio.get_running_loop().time()
        with pytest.raises(ToolInProgress):
            await state.run_tool("pay", "k", tool, tool_options=ToolOptions(wait=0.3))
        assert asyncio.get_running_loop().time() - started >= 0.3
        refresh = asyncio.create_task(state.run_tool("pay", "k", tool))
        await asyncio.sleep(0.5)
        assert not refresh.done()
        gate.set()
        assert await first == "first answer"
        assert await refresh == "first answer"
        await state.aclose()

    run(main)
    assert calls == [1]
    assert ToolOptions().wait == schema.DEFAULT_TOOL_WAIT > 0
    assert counters(raw, namespace, schema.FAMILY_TOOL_DUPLICATES_SUPPRESSED) == {"pay": 1}


def test_unreachable_redis_is_named() -> None:
    from harness import free_port

    async def main() -> None:
        state = aio.AgentState.from_url(f"redis://127.0.0.1:{free_port()}", socket_timeout=0.5)
        with pytest.raises(StateUnavailable, match=r"history\.append"):
            await state.history("s").append("user", "hi")
        report = await state.ready(deadline=0.5)
        assert not report.ready and not report.reachable
        await state.aclose()

    run(main)
