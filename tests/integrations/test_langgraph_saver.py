"""AgentStateSaver under a real LangGraph graph (offline: a deterministic function stands in
for the model), its bounds (newest N checkpoints, a TTL on every key, refreshed on activity),
its misses, and the exporter counting its keys under the memorywatch profile."""

from __future__ import annotations

import asyncio
import itertools
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from langchain_core.messages import HumanMessage, ToolMessage
from lg_graph import TOOL_RUNS, build
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from harness import RedisServer, wait_until
from memorywatch import names, schema
from memorywatch.agent import AgentState, StateMiss
from memorywatch.agent import aio as agent_aio
from memorywatch.agent import attributes as attr
from memorywatch.exporter import keyclass
from memorywatch.integrations.langgraph import AgentStateSaver, AsyncAgentStateSaver
from metrics import InProcessExporter


@pytest.fixture
def states(server: RedisServer, namespace: str) -> Iterator[tuple[AgentState, AgentState]]:
    """Two instances' clients on one Redis, as two processes of a fleet have."""
    a = AgentState.from_url(server.url, namespace=namespace, instance_id="a")
    b = AgentState.from_url(server.url, namespace=namespace, instance_id="b")
    yield a, b
    a.close()
    b.close()


def checkpoint_keys(raw: redis.Redis, namespace: str) -> list[str]:
    """Every key of the namespace the exporter files under the ``checkpoint`` class."""
    return sorted(
        k
        for k in raw.scan_iter(f"{namespace}:*")
        if keyclass.key_class(k, namespace) == schema.KEY_CLASS_CHECKPOINT
    )


def test_a_graph_resumes_on_another_instance_with_its_history(
    states: tuple[AgentState, AgentState],
) -> None:
    TOOL_RUNS.clear()
    first, second = build(AgentStateSaver(states[0])), build(AgentStateSaver(states[1]))
    config = {"configurable": {"thread_id": "conversation-1"}}
    for text in ("buy milk", "call bob", "book flight"):
        out = first.invoke({"messages": [HumanMessage(text)]}, config)
    assert out["messages"][-1].content == "done with 3 requests"

    # another instance picks the conversation up: every message of the three turns is there
    seen = second.get_state(config)
    assert [m.type for m in seen.values["messages"]] == ["human", "ai", "tool", "ai"] * 3
    out = second.invoke({"messages": [HumanMessage("water plants")]}, config)
    assert out["messages"][-1].content == "done with 4 requests"
    assert TOOL_RUNS == ["buy milk", "call bob", "book flight", "water plants"]
    tool_results = [m.content for m in out["messages"] if isinstance(m, ToolMessage)]
    assert tool_results == [f"noted: {t}" for t in TOOL_RUNS]

    # and the first instance sees the fourth turn too, with its time travel history
    assert len(first.get_state(config).values["messages"]) == 16
    steps = [s.metadata["step"] for s in first.get_state_history(config) if s.metadata]
    assert steps == sorted(steps, reverse=True) and len(steps) == len(set(steps))
    other = {"configurable": {"thread_id": "conversation-2"}}
    assert first.get_state(other).values == {}


CHILD = """
import json, sys
sys.path[:0] = sys.argv[3:]
from lg_graph import TOOL_RUNS, build
from langchain_core.messages import HumanMessage
from memorywatch.agent import AgentState
from memorywatch.integrations.langgraph import AgentStateSaver
state = AgentState.from_url(sys.argv[1], namespace=sys.argv[2], instance_id="child")
graph = build(AgentStateSaver(state))
out = graph.invoke({"messages": [HumanMessage("feed cat")]}, {"configurable": {"thread_id": "c-1"}})
print(json.dumps({"messages": len(out["messages"]), "last": out["messages"][-1].content,
                  "tool_runs": TOOL_RUNS}))
state.close()
"""


@pytest.mark.slow
def test_another_process_continues_the_conversation(
    server: RedisServer, states: tuple[AgentState, AgentState], namespace: str
) -> None:
    TOOL_RUNS.clear()
    graph = build(AgentStateSaver(states[0]))
    config = {"configurable": {"thread_id": "c-1"}}
    for text in ("buy milk", "call bob"):
        graph.invoke({"messages": [HumanMessage(text)]}, config)
    here = Path(__file__).resolve().parent
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, server.url, namespace, str(here.parent), str(here)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    child = json.loads(proc.stdout.strip().splitlines()[-1])
    assert child == {"messages": 12, "last": "done with 3 requests", "tool_runs": ["feed cat"]}
    back = graph.get_state(config).values["messages"]
    assert [m.content for m in back if isinstance(m, HumanMessage)] == [
        "buy milk",
        "call bob",
        "feed cat",
    ]
    assert TOOL_RUNS == ["buy milk", "call bob"]  # each side effect ran once, where it ran


def test_a_thread_keeps_its_newest_checkpoints_and_every_key_expires(
    server: RedisServer, states: tuple[AgentState, AgentState], namespace: str
) -> None:
    raw = server.client()
    saver = AgentStateSaver(states[0], ttl=120, max_checkpoints=5)
    graph = build(saver)
    config = {"configurable": {"thread_id": "long-thread"}}
    for i in range(8):  # 8 turns (runs) of 5 checkpoints each
        run = {"configurable": {"thread_id": "long-thread", "run_id": f"run-{i}"}}
        graph.invoke({"messages": [HumanMessage(f"turn {i}")]}, run)
    listed = list(saver.list(config))
    assert len(listed) == 5
    ids = [t.checkpoint["id"] for t in listed]
    assert ids == sorted(ids, reverse=True)
    assert (
        listed[0].checkpoint["id"]
        == graph.get_state(config).config["configurable"]["checkpoint_id"]
    )
    assert len(graph.get_state(config).values["messages"]) == 32  # the state itself is whole

    sch = states[0].schema
    assert raw.zcard(sch.checkpoint_index("long-thread")) == 5
    assert raw.hlen(sch.checkpoints("long-thread")) == 5
    kept = {f"{t.checkpoint['id']}\0" for t in listed}
    writes = raw.hkeys(sch.checkpoint_writes("long-thread"))
    assert writes and all(any(f.startswith(k) for k in kept) for f in writes)
    keys = checkpoint_keys(raw, namespace)
    assert len(keys) == 3 + 8  # the thread's three, and one thread set per run
    for key in keys:
        assert 0 < raw.pttl(key) <= 120_000, key

    # activity refreshes the retention of the thread's keys
    thread = [sch.checkpoints("long-thread"), sch.checkpoint_index("long-thread")]
    thread.append(sch.checkpoint_writes("long-thread"))
    for key in thread:
        raw.pexpire(key, 1000)
    saver.get_tuple(config)
    assert all(raw.pttl(key) > 100_000 for key in thread)

    saver.delete_thread("long-thread")
    assert not any(raw.exists(key) for key in thread)
    raw.close()


def test_an_evicted_checkpoint_is_a_counted_miss_not_a_new_thread(
    server: RedisServer, states: tuple[AgentState, AgentState]
) -> None:
    raw = server.client()
    saver = AgentStateSaver(states[0])
    graph = build(saver)
    config = {"configurable": {"thread_id": "evicted"}}
    graph.invoke({"messages": [HumanMessage("hello")]}, config)
    sch = states[0].schema
    raw.delete(sch.checkpoints("evicted"))  # as an eviction would: the index witnesses it
    with pytest.raises(StateMiss):
        graph.invoke({"messages": [HumanMessage("again")]}, config)
    misses = raw.hget(sch.stats(schema.FAMILY_STATE_MISSES, "evicted"), schema.MISS_CHECKPOINT)
    assert misses == "1"
    raw.close()


def test_the_async_saver_runs_a_graph_and_refuses_a_blocking_call_on_its_loop(
    server: RedisServer, namespace: str
) -> None:
    TOOL_RUNS.clear()

    async def run() -> None:
        state = agent_aio.AgentState.from_url(server.url, namespace=namespace)
        try:
            saver = AsyncAgentStateSaver(state, max_checkpoints=10)
            graph = build(saver)
            config = {"configurable": {"thread_id": "async-1"}}
            for text in ("one", "two"):
                out = await graph.ainvoke({"messages": [HumanMessage(text)]}, config)
            assert out["messages"][-1].content == "done with 2 requests"
            with pytest.raises(asyncio.InvalidStateError):
                saver.get_tuple(config)
            # a sync call from another thread is handed to the saver's loop
            found = await asyncio.to_thread(saver.get_tuple, config)
            assert found is not None and len(found.checkpoint["channel_values"]["messages"]) == 8
        finally:
            await state.aclose()

    asyncio.run(run())
    assert TOOL_RUNS == ["one", "two"]


@pytest.mark.slow
def test_the_exporter_counts_checkpoint_keys_under_the_memorywatch_profile(
    server: RedisServer, states: tuple[AgentState, AgentState], namespace: str
) -> None:
    raw = server.client()
    saver = AgentStateSaver(states[0], max_checkpoints=3)
    graph = build(saver)
    threads = [f"thread-{i}" for i in range(4)]
    for thread_id, turn in itertools.product(threads, range(2)):
        graph.invoke(
            {"messages": [HumanMessage(f"t{turn}")]}, {"configurable": {"thread_id": thread_id}}
        )
    total = raw.dbsize()
    with InProcessExporter(
        redis_url=server.url, namespace=namespace, sample_interval=0.1
    ) as exporter:
        found: list[Any] = []

        def sampled() -> bool:
            scrape = exporter.scrape()
            sample = scrape.samples(names.KEYSPACE_SAMPLE_KEYS)
            if sample and sample[0].value >= total:
                found.append(scrape)
                return True
            return False

        wait_until(sampled, 60, interval=0.2, what="a sampler pass over every key")
    scrape = found[-1]
    counted = {
        (s.labels[names.LABEL_PROFILE], s.labels[names.LABEL_KEY_CLASS]): s.value
        for s in scrape.samples(names.KEYSPACE_KEYS)
    }
    no_ttl = {
        (s.labels[names.LABEL_PROFILE], s.labels[names.LABEL_KEY_CLASS]): s.value
        for s in scrape.samples(names.KEYS_WITHOUT_TTL)
    }
    slot = ("memorywatch", names.KEY_CLASS_CHECKPOINT)
    assert counted[slot] == 3 * len(threads)  # lgcp, lgix, lgw per thread
    assert no_ttl.get(slot, 0) == 0
    for sample in scrape.samples(names.KEYSPACE_KEYS):  # no thread id ever becomes a label
        assert not any("thread-" in value for value in sample.labels.values())
    raw.close()


def test_each_saver_call_is_a_span_without_ids(server: RedisServer, namespace: str) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    state = AgentState.from_url(server.url, namespace=namespace, tracer_provider=provider)
    try:
        graph = build(AgentStateSaver(state))
        graph.invoke(
            {"messages": [HumanMessage("secret text")]}, {"configurable": {"thread_id": "t-42"}}
        )
    finally:
        state.close()
    spans = [s for s in exporter.get_finished_spans() if s.name.endswith(" checkpoints")]
    names_seen = {s.name for s in spans}
    assert {"update_memory checkpoints", "search_memory checkpoints"} <= names_seen
    ops = {s.attributes[attr.CHECKPOINT_OP] for s in spans if s.attributes}
    assert {"put", "put_writes", "get_tuple"} <= ops
    for span in spans:
        values = [str(v) for v in (span.attributes or {}).values()]
        assert not any("t-42" in v or "secret" in v for v in values), span.name


def test_bad_use_is_one_clear_error(
    server: RedisServer, states: tuple[AgentState, AgentState], namespace: str
) -> None:
    outside = agent_aio.AgentState.from_url(server.url, namespace=namespace)
    with pytest.raises(RuntimeError, match="inside the running event loop"):
        AsyncAgentStateSaver(outside)
    asyncio.run(outside.aclose())
    with pytest.raises(TypeError, match="use AgentStateSaver"):
        AsyncAgentStateSaver(states[0])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_checkpoints must be at least 1"):
        AgentStateSaver(states[0], max_checkpoints=0)
    with pytest.raises(ValueError, match="ttl must be positive"):
        AgentStateSaver(states[0], ttl=0)
    with pytest.raises(ValueError, match="thread_id"):
        list(AgentStateSaver(states[0]).list(None))


@pytest.mark.slow
def test_ten_thousand_threads_leave_no_key_without_a_ttl(
    server: RedisServer, namespace: str
) -> None:
    from langgraph.checkpoint.base import empty_checkpoint

    threads = 10_000

    async def write_all() -> None:
        state = agent_aio.AgentState.from_url(server.url, namespace=namespace)
        saver = AsyncAgentStateSaver(state, ttl=3600)
        try:

            async def one(i: int) -> None:
                config = {"configurable": {"thread_id": f"churn-{i}", "checkpoint_ns": ""}}
                checkpoint = empty_checkpoint()
                checkpoint["id"] = f"1ef00000-0000-6000-8000-{i:012d}"
                metadata: Any = {"source": "input", "step": -1, "parents": {}}
                stored = await saver.aput(config, checkpoint, metadata, {})
                await saver.aput_writes(stored, [("messages", "hi")], "task")

            for start in range(0, threads, 200):
                await asyncio.gather(*(one(i) for i in range(start, start + 200)))
        finally:
            await state.aclose()

    asyncio.run(write_all())
    raw = server.client()
    keys = list(raw.scan_iter(f"{namespace}:*", count=1000))
    pipe = raw.pipeline(transaction=False)
    for key in keys:
        pipe.pttl(key)
    ttls = dict(zip(keys, pipe.execute(), strict=True))
    by_class: dict[str, int] = {}
    for key in keys:
        by_class[keyclass.key_class(key, namespace)] = (
            by_class.get(keyclass.key_class(key, namespace), 0) + 1
        )
    assert by_class[schema.KEY_CLASS_CHECKPOINT] == 3 * threads
    without_ttl = sorted(k for k, ttl in ttls.items() if ttl == -1)
    assert without_ttl == [f"{namespace}:schema"]  # docs/schema.md: 1 key, 2 fields
    raw.close()
