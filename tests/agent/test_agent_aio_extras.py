"""asyncio twin: claim renewal, the heartbeat task and the idempotent_tool decorator."""

from __future__ import annotations

import asyncio

import pytest
import redis

from harness import RedisServer
from memorywatch import schema
from memorywatch.agent import AgentState, ToolContext, ToolInProgress, ToolOptions, aio


def test_renewal_keeps_a_long_tool_from_being_reclaimed(
    server: RedisServer, namespace: str
) -> None:
    async def main() -> None:
        state = aio.AgentState.from_url(server.url, namespace=namespace, instance_id="a")
        other = aio.AgentState.from_url(server.url, namespace=namespace, instance_id="b")
        runs: list[str] = []

        async def slow(ctx: ToolContext) -> str:
            runs.append("slow")
            await asyncio.sleep(1.5)  # 2.5 x its 0.6 s deadline
            return "done"

        task = asyncio.create_task(
            state.run_tool("charge", "k1", slow, tool_options=ToolOptions(deadline=0.6, renew=True))
        )
        await asyncio.sleep(1.0)  # past the unrenewed deadline
        with pytest.raises(ToolInProgress):
            await other.run_tool("charge", "k1", slow, tool_options=ToolOptions(wait=0))
        assert await task == "done"
        assert runs == ["slow"]
        await state.aclose()
        await other.aclose()

    asyncio.run(main())


def test_heartbeat_task_and_decorator(
    server: RedisServer, raw: redis.Redis, namespace: str
) -> None:
    async def main() -> None:
        state = aio.AgentState.from_url(server.url, namespace=namespace, instance_id="hb-1")
        await state.start_heartbeat(interval=0.05)
        key = state.schema.heartbeat("hb-1")
        for _ in range(100):
            if raw.hget(key, "ready") == "1":
                break
            await asyncio.sleep(0.02)
        assert raw.hget(key, "ready") == "1"
        assert 0 < raw.pttl(key) <= state.settings.heartbeat_ttl * 1000

        calls: list[str] = []

        @aio.idempotent_tool(state, key=lambda order_id: f"ticket:{order_id}")
        async def create_ticket(ctx: ToolContext, order_id: str) -> str:
            calls.append(order_id)
            return f"T-{order_id}-{ctx.fencing_token}"

        first = await create_ticket("42")
        assert await create_ticket("42") == first  # the replay is answered from the record
        assert calls == ["42"]
        await state.aclose()
        assert state._core.heartbeat is None

    asyncio.run(main())


def test_heartbeat_task_rechecks_readiness_like_the_sync_thread(
    server: RedisServer, raw: redis.Redis, namespace: str
) -> None:
    """The sync HeartbeatThread runs ready() before each beat; the task must too, so an
    instance that cannot serve (here: a schema it cannot write) is published as not ready,
    and as ready again once it can."""
    sync = AgentState.from_url(
        server.url, namespace=namespace, instance_id="sync-1", check_schema=False
    )
    sch = sync.schema
    raw.hset(
        sch.schema_key(),
        mapping={schema.SCHEMA_FIELD_VERSION: "999", schema.SCHEMA_FIELD_SHARDS: "1"},
    )
    sync.start_heartbeat(interval=0.05)

    def flags() -> tuple[str | None, str | None]:
        sync_flag = raw.hget(sch.heartbeat("sync-1"), "ready")
        return sync_flag, raw.hget(sch.heartbeat("async-1"), "ready")

    async def until(expected: tuple[str, str], what: str) -> None:
        deadline = asyncio.get_running_loop().time() + 10
        while flags() != expected:
            assert asyncio.get_running_loop().time() < deadline, f"{what}: {flags()}"
            await asyncio.sleep(0.02)

    async def main() -> None:
        state = aio.AgentState.from_url(server.url, namespace=namespace, instance_id="async-1")
        assert state.schema == sch
        await state.start_heartbeat(interval=0.05)
        await until(("0", "0"), "both published not ready")
        raw.hset(sch.schema_key(), schema.SCHEMA_FIELD_VERSION, str(schema.SCHEMA_VERSION))
        await until(("1", "1"), "both published ready again")
        await state.aclose()

    try:
        asyncio.run(main())
    finally:
        sync.close()
