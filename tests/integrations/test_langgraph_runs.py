"""run_once / arun_once / idempotent_tool on a real LangGraph graph and a real redis-server, in
one process (the two-process races and the SIGKILL are in test_langgraph_runs_processes.py)."""

from __future__ import annotations

import asyncio
import threading
from typing import Annotated, Any

import pytest
import redis
from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.tools import InjectedToolCallId
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import InjectedState, ToolNode, ToolRuntime, tools_condition
from lg_helpers import (
    build_graph,
    effects_key,
    model_calls_key,
    model_fail_key,
    summary,
    turn,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from harness import RedisServer
from memorywatch import schema
from memorywatch.agent import AgentState, ToolContext, aio
from memorywatch.integrations.langgraph import AsyncAgentStateSaver, runs
from memorywatch.integrations.langgraph.runs import (
    RUN_TOOL_NAME,
    THREAD_LOCK_KIND,
    OutputNotRecorded,
    RunInProgress,
    ThreadBusy,
    arun_once,
    idempotent_tool,
    run_once,
)


def config(thread: str) -> dict[str, dict[str, str]]:
    return {"configurable": {"thread_id": thread}}


def counters(raw: redis.Redis, namespace: str, family: str) -> dict[str, float]:
    sch = schema.Schema(namespace)
    return schema.merge_counters(raw.hgetall(k) for k in sch.stats_keys(family))


def test_without_run_once_a_double_submit_runs_the_tool_twice_with_run_once_once(
    state: AgentState, raw: redis.Redis, namespace: str
) -> None:
    """The issue's point: fresh tool-call ids on the re-run defeat tool-call-id keys alone."""
    graph = build_graph(state, raw, namespace, InMemorySaver())
    graph.invoke(turn("a"), config("plain"))
    graph.invoke(turn("a"), config("plain"))  # the double submit, plain LangGraph
    assert len(raw.lrange(effects_key(namespace), 0, -1)) == 2  # fresh ids: both ran
    raw.delete(effects_key(namespace), model_calls_key(namespace))
    first = run_once(graph, turn("hello"), config("t1"), request_id="r1", state=state)
    again = run_once(graph, turn("hello"), config("t1"), request_id="r1", state=state)
    assert summary(again["messages"]) == summary(first["messages"])
    assert isinstance(again["messages"][1], AIMessage)  # decoded by LangGraph's serializer
    assert isinstance(again["messages"][2], ToolMessage)
    assert len(raw.lrange(effects_key(namespace), 0, -1)) == 1
    assert raw.get(model_calls_key(namespace)) == "2"  # the replay called no model
    assert counters(raw, namespace, schema.FAMILY_TOOL_DUPLICATES_SUPPRESSED) == {RUN_TOOL_NAME: 1}
    # another instance (another AgentState, same Redis) replays the same record
    other = AgentState(raw, namespace=namespace, instance_id="other")
    replayed = run_once(graph, turn("hello"), config("t1"), request_id="r1", state=other)
    assert summary(replayed["messages"]) == summary(first["messages"])
    assert raw.get(model_calls_key(namespace)) == "2"
    ttl = raw.pttl(state.schema.tool("lgreq:t1:r1"))
    assert 0 < ttl <= schema.DEFAULT_TOOL_RETENTION * 1000


def test_a_busy_thread_refuses_after_the_wait_and_the_request_can_be_retried(
    state: AgentState, raw: redis.Redis, namespace: str
) -> None:
    graph = build_graph(state, raw, namespace, InMemorySaver())
    holder = state.lock(THREAD_LOCK_KIND, "t1")
    with pytest.raises(ThreadBusy, match="'t1' is running another request; still busy after"):
        run_once(graph, turn("x"), config("t1"), request_id="r1", state=state, lock_wait=0.2)
    holder.release()
    assert raw.get(model_calls_key(namespace)) is None
    # the refusal freed the record: the retry runs (it does not replay the refusal)
    out = run_once(graph, turn("x"), config("t1"), request_id="r1", state=state)
    assert summary(out["messages"])[-1] == ("ai", "done: recorded x", [])
    contended = counters(raw, namespace, schema.FAMILY_LOCK_CONTENDED)
    assert contended.get(THREAD_LOCK_KIND) == 1


def test_a_failed_run_is_retried_from_its_own_checkpoint_not_from_the_input(
    state: AgentState, raw: redis.Redis, namespace: str
) -> None:
    """The model fails on its second call (after the tool ran): the retry of the same request
    resumes the request's checkpoint; the tool does not run again, the input is not added
    twice."""
    graph = build_graph(state, raw, namespace, InMemorySaver())
    raw.set(model_fail_key(namespace), 1)
    with pytest.raises(RuntimeError, match="model outage"):
        run_once(graph, turn("y"), config("t2"), request_id="r1", state=state)
    assert graph.get_state(config("t2")).next == ("agent",)
    out = run_once(graph, turn("y"), config("t2"), request_id="r1", state=state)
    assert [kind for kind, _, _ in summary(out["messages"])] == ["human", "ai", "tool", "ai"]
    assert summary(out["messages"])[-1] == ("ai", "done: recorded y", [])
    assert len(raw.lrange(effects_key(namespace), 0, -1)) == 1
    # an interrupt completes its run (recorded); the next request resumes it with None
    run_once(graph, turn("z"), config("t3"), request_id="r1", state=state,
             interrupt_before=["tools"])  # fmt: skip
    assert graph.get_state(config("t3")).next == ("tools",)
    resumed = run_once(graph, None, config("t3"), request_id="r2", state=state)
    assert summary(resumed["messages"])[-1] == ("ai", "done: recorded z", [])
    assert len(raw.lrange(effects_key(namespace), 0, -1)) == 2


def test_the_same_tool_call_replays_and_a_fresh_id_runs_again(
    state: AgentState, raw: redis.Redis, namespace: str
) -> None:
    calls: list[int] = []

    def add(a: int, b: int) -> int:
        """Add two numbers."""
        from memorywatch.integrations.langgraph.runs import tool_context

        calls.append(tool_context().fencing_token)
        return a + b

    wrapped = idempotent_tool(state)(add)
    call = {"name": "add", "args": {"a": 2, "b": 3}, "id": "call-1", "type": "tool_call"}
    first = wrapped.invoke(call, config("t1"))
    second = wrapped.invoke(call, config("t1"))
    assert isinstance(first, ToolMessage) and first.content == "5"
    assert second == first and len(calls) == 1
    fresh = wrapped.invoke({**call, "id": "call-2"}, config("t1"))
    assert fresh.content == "5" and len(calls) == 2 and calls[1] > calls[0]
    with pytest.raises(ValueError, match="must be called with a tool call"):
        wrapped.invoke({"a": 1, "b": 2}, config("t1"))
    with pytest.raises(ValueError, match="thread_id"):
        wrapped.invoke(call, {})
    assert counters(raw, namespace, schema.FAMILY_TOOL_EXECUTIONS) == {"add|completed": 2}


def test_spans_name_the_run_and_the_tool(
    state: AgentState, raw: redis.Redis, namespace: str, spans: InMemorySpanExporter
) -> None:
    graph = build_graph(state, raw, namespace, InMemorySaver())
    run_once(graph, turn("s"), config("t1"), request_id="r1", state=state)
    names = [s.name for s in spans.get_finished_spans()]
    assert f"execute_tool {RUN_TOOL_NAME}" in names
    assert "execute_tool record" in names
    assert counters(raw, namespace, schema.FAMILY_TOOL_EXECUTIONS) == {
        f"{RUN_TOOL_NAME}|completed": 1,
        "record|completed": 1,
    }


def test_asyncio_double_submit_and_two_requests_of_one_thread(
    server: RedisServer, raw: redis.Redis, namespace: str
) -> None:
    async def scenario() -> None:
        async with aio.AgentState.from_url(server.url, namespace=namespace) as st:
            # the saver lends its state to arun_once (no state=)
            graph = build_graph(st, raw, namespace, AsyncAgentStateSaver(st))
            a, b = await asyncio.gather(
                arun_once(graph, turn("one"), config("t1"), request_id="r1"),
                arun_once(graph, turn("one"), config("t1"), request_id="r1"),
            )
            assert summary(a["messages"]) == summary(b["messages"])
            assert len(raw.lrange(effects_key(namespace), 0, -1)) == 1
            # two different requests of one thread at once: one after the other, whole turns
            await asyncio.gather(
                arun_once(graph, turn("two"), config("t1"), request_id="r2", state=st),
                arun_once(graph, turn("three"), config("t1"), request_id="r3", state=st),
            )
            history = summary((await graph.aget_state(config("t1"))).values["messages"])
            kinds = [kind for kind, _, _ in history]
            assert kinds == ["human", "ai", "tool", "ai"] * 3
            for i in range(0, 12, 4):  # every turn whole: its tool answers its own call
                assert history[i + 1][2] == history[i + 2][2]
            assert len(raw.lrange(effects_key(namespace), 0, -1)) == 3

    asyncio.run(scenario())


def test_the_same_request_running_elsewhere_is_waited_for_then_refused(
    state: AgentState, raw: redis.Redis, namespace: str
) -> None:
    graph = build_graph(state, raw, namespace, InMemorySaver())
    started, finish = threading.Event(), threading.Event()

    def elsewhere(ctx: ToolContext) -> dict[str, str]:  # the run of another instance
        started.set()
        finish.wait(10)
        return runs._encode(JsonPlusSerializer(), {"messages": [AIMessage("from elsewhere")]})

    holder = threading.Thread(target=state.run_tool, args=(RUN_TOOL_NAME, "lgreq:t1:r1", elsewhere))
    holder.start()
    try:
        assert started.wait(10)
        with pytest.raises(RunInProgress, match="request 'r1' is still running on another"):
            run_once(graph, turn("q"), config("t1"), request_id="r1", state=state, wait=0.2)
    finally:
        finish.set()
        holder.join(10)
    # a replay within the wait gets the other instance's recorded output; the graph never ran
    out = run_once(graph, turn("q"), config("t1"), request_id="r1", state=state)
    assert out["messages"][0].content == "from elsewhere"
    assert raw.get(model_calls_key(namespace)) is None
    with pytest.raises(ValueError, match="request_id"):
        run_once(graph, turn("q"), config("t1"), request_id="", state=state)
    with pytest.raises(ValueError, match="thread_id"):
        run_once(graph, turn("q"), {}, request_id="r2", state=state)
    with pytest.raises(TypeError, match="state=AgentState"):
        run_once(graph, turn("q"), config("t1"), request_id="r2")


def test_injected_state_runtime_and_call_id_reach_the_tool_and_stay_out_of_the_key(
    state: AgentState, raw: redis.Redis, namespace: str
) -> None:
    seen: list[tuple[int, str, str]] = []

    @idempotent_tool(state)
    def count(
        word: str,
        graph_state: Annotated[dict[str, Any], InjectedState],
        call_id: Annotated[str, InjectedToolCallId],
        runtime: ToolRuntime,
    ) -> str:
        """Count the messages so far."""
        seen.append((len(graph_state["messages"]), call_id, runtime.tool_call_id or ""))
        return f"{word}={len(graph_state['messages'])}"

    assert set(count.tool_call_schema.model_json_schema()["properties"]) == {"word"}

    def model(graph_state: MessagesState) -> dict[str, list[AIMessage]]:  # repeats one call id
        last = graph_state["messages"][-1]
        if isinstance(last, ToolMessage):
            return {"messages": [AIMessage(f"done {last.content}")]}
        call = {"name": "count", "args": {"word": "n"}, "id": "c1"}
        return {"messages": [AIMessage("", tool_calls=[call])]}

    builder = StateGraph(MessagesState)
    builder.add_node("agent", model)
    builder.add_node("tools", ToolNode([count]))
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", tools_condition)
    builder.add_edge("tools", "agent")
    graph = builder.compile(checkpointer=InMemorySaver())
    first = run_once(graph, turn("a"), config("t1"), request_id="r1", state=state)
    second = run_once(graph, turn("b"), config("t1"), request_id="r2", state=state)
    assert first["messages"][-1].content == "done n=2"
    # a new run whose model repeats the call id gets the recorded answer: the tool ran once
    assert second["messages"][-1].content == "done n=2"
    assert seen == [(2, "c1", "c1")]


def test_a_tool_on_the_sync_client_serves_an_asyncio_graph(
    state: AgentState, raw: redis.Redis, namespace: str
) -> None:
    """``ainvoke`` of a tool wrapped with the sync AgentState runs it in a worker thread,
    with its context (the fencing token) visible to the tool."""
    tokens: list[int] = []

    def ping(host: str) -> str:
        """Ping a host."""
        from memorywatch.integrations.langgraph.runs import tool_context

        tokens.append(tool_context().fencing_token)
        return f"pong {host}"

    wrapped = idempotent_tool(state)(ping)
    call = {"name": "ping", "args": {"host": "db"}, "id": "c9", "type": "tool_call"}

    async def twice() -> tuple[ToolMessage, ToolMessage]:
        return await wrapped.ainvoke(call, config("t1")), await wrapped.ainvoke(call, config("t1"))

    first, second = asyncio.run(twice())
    assert first.content == second.content == "pong db"
    assert len(tokens) == 1 and tokens[0] > 0


def test_an_output_the_serializer_refuses_is_not_run_again(state: AgentState) -> None:
    """The graph ran; its output cannot be recorded: the replay says so instead of running
    the turn a second time."""
    runs_seen: list[int] = []

    class Handle:  # not serialisable by LangGraph's serializer
        pass

    def node(graph_state: dict[str, Any]) -> dict[str, Any]:
        runs_seen.append(1)
        return {"value": Handle()}

    builder = StateGraph(dict)
    builder.add_node("node", node)
    builder.add_edge(START, "node")
    graph = builder.compile()  # no checkpointer: the output is all there is
    out = run_once(graph, {"value": 0}, config("t1"), request_id="r1", state=state)
    assert isinstance(out["value"], Handle)  # the first caller gets the live output
    with pytest.raises(OutputNotRecorded, match="could not be serialised"):
        run_once(graph, {"value": 0}, config("t1"), request_id="r1", state=state)
    assert runs_seen == [1]
