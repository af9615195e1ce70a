"""memorywatch.integrations.openai_agents on a real Redis: the session protocol (checked step by
step against openai-agents' own RedisSession), run_once and idempotent tools, and a fleet of
processes double-submitting, continuing, replaying and dying mid-turn."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
from typing import Any

import pytest
import redis
import redis.asyncio as aredis
from agents import Runner
from agents.extensions.memory import RedisSession
from agents.memory import Session, SessionSettings
from oa_helpers import EFFECTS, RUN_CONFIG, TOOL_OPTIONS, BookingModel, booking_agent, worker

from harness import RedisServer, wait_until
from memorywatch import schema
from memorywatch.agent import AgentState, FingerprintMismatch, StateMiss, aio
from memorywatch.integrations.openai_agents import AgentStateSession, run_once, run_once_sync


def counters(client: redis.Redis, namespace: str, family: str) -> dict[str, float]:
    sch = schema.Schema(namespace)
    return schema.merge_counters(client.hgetall(k) for k in sch.stats_keys(family))


KW: dict[str, Any] = {"run_config": RUN_CONFIG}
ITEMS: list[Any] = [
    {"role": "user", "content": "Book a table for two, près de la gare 🚉"},
    {
        "type": "function_call",
        "id": "fc_1",
        "call_id": "call_1",
        "name": "book",
        "arguments": '{"what": "table"}',
        "status": "completed",
    },
    {"type": "function_call_output", "call_id": "call_1", "output": "table #7"},
    {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": "Booked: table #7", "annotations": []}],
    },
    {"role": "user", "content": ""},
    {"role": "system", "content": [{"type": "input_text", "text": "be brief"}]},
]


def test_session_protocol_answers_as_redis_session(server: RedisServer, namespace: str) -> None:
    """Every step of the protocol, on both sessions side by side: same answers."""

    async def main() -> None:
        state = aio.AgentState.from_url(server.url, namespace=namespace)
        client = aredis.Redis.from_url(server.url)

        def pair(session_id: str, **kw: Any) -> tuple[Any, Any]:
            ours = AgentStateSession(session_id, state, **kw)
            theirs = RedisSession(
                session_id, redis_client=client, key_prefix=f"{namespace}-oa", ttl=3600, **kw
            )
            return ours, theirs

        async def both(step: str, fn: Any) -> Any:
            answers = [await fn(s) for s in sessions]
            assert answers[0] == answers[1], step
            return answers[0]

        sessions = pair("conv-a")
        assert isinstance(sessions[0], Session)
        assert await both("new", lambda s: s.get_items()) == []
        assert await both("pop new", lambda s: s.pop_item()) is None
        await both("add", lambda s: s.add_items(ITEMS[:2]))
        await both("add none", lambda s: s.add_items([]))
        await both("add more", lambda s: s.add_items(ITEMS[2:]))
        assert await both("all", lambda s: s.get_items()) == ITEMS
        for limit in (0, 1, 3, len(ITEMS), 100):
            await both(f"limit {limit}", lambda s, n=limit: s.get_items(limit=n))
        assert await both("pop", lambda s: s.pop_item()) == ITEMS[-1]
        assert await both("after pop", lambda s: s.get_items()) == ITEMS[:-1]
        other = pair("conv-b")
        await other[0].add_items([{"role": "user", "content": "elsewhere"}])
        await both("isolated", lambda s: s.get_items())
        await both("clear", lambda s: s.clear_session())
        assert await both("cleared", lambda s: s.get_items()) == []
        assert await both("pop cleared", lambda s: s.pop_item()) is None
        sessions = pair("conv-c", session_settings=SessionSettings(limit=2))
        await both("add", lambda s: s.add_items(ITEMS))
        assert await both("settings limit", lambda s: s.get_items()) == ITEMS[-2:]
        # a real Runner on each: the second turn sees the first
        sessions = pair("conv-d")
        agent = booking_agent(state, server.url, namespace)
        for text in ("a table", "a taxi"):
            outputs = [
                (await Runner.run(agent, text, session=s, run_config=RUN_CONFIG)).final_output
                for s in sessions
            ]
            assert outputs[0].split("#")[0] == outputs[1].split("#")[0] == f"booked: {text} "
        ours, theirs = [await s.get_items() for s in sessions]
        assert len(ours) == len(theirs) == 8
        assert [i.get("type") or i["role"] for i in ours] == [
            i.get("type") or i["role"] for i in theirs
        ]
        await client.aclose()
        await state.aclose()

    asyncio.run(main())


def test_a_lost_history_raises_state_miss(server: RedisServer, raw: redis.Redis, namespace: str):
    async def main() -> None:
        state = aio.AgentState.from_url(server.url, namespace=namespace)
        session = AgentStateSession("conv-1", state)
        await session.add_items(ITEMS[:3])
        raw.delete(state.schema.history("conv-1"))  # what an eviction does
        with pytest.raises(StateMiss):
            await session.get_items()
        with pytest.raises(StateMiss):
            await session.pop_item()
        with pytest.raises(StateMiss):
            await run_once(
                booking_agent(state, server.url, namespace),
                "a table",
                session=session,
                request_id="r1",
                run_config=RUN_CONFIG,
            )
        await session.clear_session()  # the user starts over: a new conversation
        assert await session.get_items() == []
        await state.aclose()

    asyncio.run(main())
    assert counters(raw, namespace, schema.FAMILY_STATE_MISSES)[schema.MISS_HISTORY] >= 3
    assert raw.lrange(f"{namespace}-{EFFECTS}", 0, -1) == []  # the turn never ran


def test_run_once_sync_replays_and_refuses_another_input(
    server: RedisServer, raw: redis.Redis, namespace: str
) -> None:
    with AgentState.from_url(server.url, namespace=namespace) as state:
        session = AgentStateSession("conv-1", state)
        agent = booking_agent(state, server.url, namespace)
        first = run_once_sync(
            agent, "a table", session=session, request_id="r1", run_config=RUN_CONFIG
        )
        again = run_once_sync(
            agent, "a table", session=session, request_id="r1", run_config=RUN_CONFIG
        )
        assert first == again and first.startswith("booked: a table #")
        with pytest.raises(FingerprintMismatch):
            run_once_sync(agent, "a taxi", session=session, request_id="r1", run_config=RUN_CONFIG)
        # outside run_once a plain Runner still gets the session and the idempotent tool
        out = Runner.run_sync(agent, "a taxi", session=session, run_config=RUN_CONFIG)
        assert out.final_output.startswith("booked: a taxi #")
        items = asyncio.run(session.get_items())
    assert [e.split("|")[0] for e in raw.lrange(f"{namespace}-{EFFECTS}", 0, -1)] == [
        "a table",
        "a taxi",
    ]
    assert len(items) == 8


def test_a_failed_turn_is_retried_with_its_tool_replayed(
    server: RedisServer, raw: redis.Redis, namespace: str
) -> None:
    async def main() -> list[Any]:
        state = aio.AgentState.from_url(server.url, namespace=namespace)
        session = AgentStateSession("conv-1", state)
        agent = booking_agent(state, server.url, namespace)
        model = agent.model
        assert isinstance(model, BookingModel)
        model.fail_after_tool = True
        with pytest.raises(RuntimeError, match="model API is down"):
            await run_once(agent, "a table", session=session, request_id="r1", **KW)
        assert len(await session.get_items()) == 3  # input, tool call, tool output
        model.fail_after_tool = False
        out = await run_once(agent, "a table", session=session, request_id="r1", **KW)
        assert out.startswith("booked: a table #")
        items = await session.get_items()
        await state.aclose()
        return items

    items = asyncio.run(main())
    assert [i.get("type") or i["role"] for i in items] == [
        "user",
        "function_call",
        "function_call_output",
        "message",
    ]
    assert len(_effects(raw, namespace)) == 1  # the retry replayed the tool


def _start(ctx: Any, url: str, namespace: str, name: str, results: Any, go: Any) -> tuple[Any, Any]:
    jobs = ctx.Queue()
    proc = ctx.Process(target=worker, args=(url, namespace, name, jobs, results, go), daemon=True)
    proc.start()
    return proc, jobs


async def retry_here(url: str, namespace: str, request_id: str, text: str) -> tuple[Any, Any]:
    """A third instance, this process, retries the request of a dead one."""
    state = aio.AgentState.from_url(url, namespace=namespace, instance_id="c")
    session = AgentStateSession("conv-1", state)
    agent = booking_agent(state, url, namespace, TOOL_OPTIONS)
    output = await run_once(
        agent, text, session=session, request_id=request_id, ttl=1.5, run_config=RUN_CONFIG
    )
    items = await session.get_items()
    await state.aclose()
    return output, items


def _effects(raw: redis.Redis, namespace: str) -> list[tuple[str, int, int]]:
    entries = raw.lrange(f"{namespace}-{EFFECTS}", 0, -1)
    return [(w, int(t), int(r)) for w, t, r in (e.split("|") for e in entries)]


@pytest.mark.slow
def test_a_fleet_double_submits_continues_replays_and_survives_kills(
    server: RedisServer, raw: redis.Redis, namespace: str
) -> None:
    """Two instances get the same turn at the same moment; the conversation goes on on the
    other one; the first replays the first request; then an instance dies mid-turn (after its
    tool ran, while the model answers) and the replay of that request finishes the turn; then
    one dies inside its tool and the retry, past the tool's deadline, runs the tool again."""
    ctx = multiprocessing.get_context("spawn")
    results, go = ctx.Queue(), ctx.Event()
    a, a_jobs = _start(ctx, server.url, namespace, "a", results, go)
    b, b_jobs = _start(ctx, server.url, namespace, "b", results, go)
    try:
        a_jobs.put(("r1", "a table", True, None))
        b_jobs.put(("r1", "a table", True, None))
        go.set()
        first = {results.get(timeout=30)[0:3] for _ in range(2)}
        assert {out for _, _, out in first} == {next(iter(first))[2]}, first
        answer = next(iter(first))[2]
        assert answer.startswith("booked: a table #"), answer
        b_jobs.put(("r2", "a taxi", False, None))
        _, _, second, b_items = results.get(timeout=30)
        assert second.startswith("booked: a taxi #"), second
        a_jobs.put(("r1", "a table", False, None))  # the replay of the first request
        name, _, replayed, a_items = results.get(timeout=30)
        assert (name, replayed) == ("a", answer)
        assert a_items == b_items and len(a_items) == 8
        assert [i.get("content") for i in a_items if i.get("role") == "user"] == [
            "a table",
            "a taxi",
        ]
        # a process killed mid-turn: its tool ran, the model had not answered
        b_jobs.put(("r3", "a cab", False, "model"))  # b dies in this turn
        wait_until(lambda: raw.llen(f"{namespace}-hung") == 1, timeout=30, what="b hung")
        history = schema.Schema(namespace, schema.default_shards(False)).history("conv-1")
        assert raw.llen(history) > 8  # the dead turn had written its input and its tool call
        os.kill(b.pid, signal.SIGKILL)  # type: ignore[arg-type]
        b.join(10)
        a_jobs.put(("r3", "a cab", False, None))  # the client's retry lands on another instance
        _, _, third, a_items = results.get(timeout=30)
        assert third.startswith("booked: a cab #"), third
        # a process killed inside its tool, after the side effect: its claim is in progress
        a_jobs.put(("r4", "a bus", False, "tool"))
        wait_until(lambda: raw.llen(f"{namespace}-hung") == 2, timeout=30, what="a hung")
        os.kill(a.pid, signal.SIGKILL)  # type: ignore[arg-type]
        a.join(10)
        fourth, c_items = asyncio.run(retry_here(server.url, namespace, "r4", "a bus"))
    finally:
        for proc in (a, b):
            proc.join(10)
            if proc.is_alive():
                proc.kill()
    effects = _effects(raw, namespace)
    # once each, but the bus: its holder died inside the tool, and past the tool's deadline the
    # retry ran it again, with a higher fencing token the booking system can tell apart
    assert [what for what, _, _ in effects] == ["a table", "a taxi", "a cab", "a bus", "a bus"]
    tool_tokens = [t for _, t, _ in effects]
    run_tokens = [r for _, _, r in effects]
    assert tool_tokens == sorted(set(tool_tokens)) and run_tokens == sorted(set(run_tokens))
    # the retried turn: the dead run's items dropped, the tool's answer replayed, once each
    assert [i.get("type") or i["role"] for i in a_items[8:]] == [
        "user",
        "function_call",
        "function_call_output",
        "message",
    ]
    assert a_items[-1]["content"][0]["text"] == third
    assert a_items[-2]["output"] == third.removeprefix("booked: ")
    assert fourth == f"booked: a bus #{tool_tokens[-1]}"
    assert [i.get("type") or i["role"] for i in c_items[12:]] == [
        "user",
        "function_call",
        "function_call_output",
        "message",
    ]
    assert c_items[:12] == a_items
    executions = counters(raw, namespace, schema.FAMILY_TOOL_EXECUTIONS)
    assert executions["book|completed"] == 4
    assert counters(raw, namespace, schema.FAMILY_TOOL_RECLAIMS) == {"agent_run": 2, "book": 1}
