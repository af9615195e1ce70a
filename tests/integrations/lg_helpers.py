"""A real LangGraph agent, offline: a deterministic function stands in for the model and emits a
fresh tool-call id on every call, as a real model does; its tool writes a side effect to Redis
outside the namespace (the "external system")."""

from __future__ import annotations

import os
import time
import uuid
from typing import Any

import redis
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, ToolMessage
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition

from memorywatch.agent import AgentState, aio
from memorywatch.integrations.langgraph.runs import current_run, idempotent_tool, tool_context


def effects_key(namespace: str) -> str:
    return f"{namespace}-effects"


def model_calls_key(namespace: str) -> str:
    return f"{namespace}-model-calls"


def model_fail_key(namespace: str) -> str:
    """When set, the next model call that follows a tool result takes it and raises."""
    return f"{namespace}-model-fail"


def block_key(namespace: str, text: str) -> str:
    """When set (to ``before`` or ``after``), the next tool call with this text takes it and
    hangs before or after its side effect (where the test kills its process); ``pause``:
    it sleeps half a second first."""
    return f"{namespace}-block:{text}"


def started_key(namespace: str) -> str:
    return f"{namespace}-started"


def build_graph(
    state: AgentState | aio.AgentState,
    side: redis.Redis,
    namespace: str,
    checkpointer: BaseCheckpointSaver[Any],
    tool_deadline: float | None = None,
) -> Any:
    def fake_model(graph_state: MessagesState) -> dict[str, list[AnyMessage]]:
        side.incr(model_calls_key(namespace))
        last = graph_state["messages"][-1]
        if isinstance(last, ToolMessage):
            if side.getdel(model_fail_key(namespace)):
                raise RuntimeError("model outage")
            return {"messages": [AIMessage(content=f"done: {last.content}")]}
        call = {"name": "record", "args": {"text": str(last.content)}, "id": uuid.uuid4().hex}
        return {"messages": [AIMessage(content="", tool_calls=[call])]}

    def record(text: str) -> str:
        """Record the text in the external system."""
        ctx = tool_context()
        try:
            request = current_run().request_id
        except LookupError:  # a plain graph.invoke, outside run_once
            request = "-"
        where = side.getdel(block_key(namespace, text))
        entry = f"{text}|{ctx.fencing_token}|{os.getpid()}|{int(ctx.reclaimed)}|{request}|{ctx.idempotency_key}"
        if where == "pause":  # long enough for a double submit to find the run in progress
            time.sleep(0.5)
        if where == "before":
            side.rpush(started_key(namespace), entry)
            time.sleep(60)  # killed here
        side.rpush(effects_key(namespace), entry)
        if where == "after":
            side.rpush(started_key(namespace), entry)
            time.sleep(60)  # killed here
        return f"recorded {text}"

    tools = ToolNode([idempotent_tool(state, deadline=tool_deadline)(record)])
    builder = StateGraph(MessagesState)
    builder.add_node("agent", fake_model)
    builder.add_node("tools", tools)
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", tools_condition)
    builder.add_edge("tools", "agent")
    return builder.compile(checkpointer=checkpointer)


def turn(text: str) -> dict[str, list[AnyMessage]]:
    return {"messages": [HumanMessage(content=text)]}


def summary(messages: list[AnyMessage]) -> list[tuple[str, str, list[str]]]:
    """(type, content, tool-call ids or the answered id) of each message: comparable, picklable."""
    out = []
    for message in messages:
        ids = [c["id"] for c in getattr(message, "tool_calls", [])]
        if isinstance(message, ToolMessage):
            ids = [message.tool_call_id]
        out.append((message.type, str(message.content), ids))
    return out


def wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not within {timeout}s")
        time.sleep(0.02)
