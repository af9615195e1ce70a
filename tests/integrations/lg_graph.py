"""The LangGraph graph of the integration tests, offline: a deterministic function stands in
for the model (a fresh tool-call id on every call, as a real model emits) and a tool node whose
tool records a side effect. Importable by a test's child process too."""

from __future__ import annotations

import uuid
from typing import Any

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage
from langchain_core.tools import tool
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.prebuilt import ToolNode

TOOL_RUNS: list[str] = []
"""The side effects of the test tool, one entry per execution."""


@tool
def add_note(text: str) -> str:
    """Store a note (the test's side effect)."""
    TOOL_RUNS.append(text)
    return f"noted: {text}"


def fake_model(state: MessagesState) -> dict[str, list[AnyMessage]]:
    """A deterministic model: a human turn asks for the tool (with a fresh call id, as a real
    model emits), a tool result gets a final answer that counts the conversation so far."""
    last = state["messages"][-1]
    if isinstance(last, HumanMessage):
        call = {"name": "add_note", "args": {"text": str(last.content)}, "id": uuid.uuid4().hex}
        return {"messages": [AIMessage(content="", tool_calls=[call])]}
    humans = sum(isinstance(m, HumanMessage) for m in state["messages"])
    return {"messages": [AIMessage(content=f"done with {humans} requests")]}


def route(state: MessagesState) -> str:
    last = state["messages"][-1]
    return "tools" if isinstance(last, AIMessage) and last.tool_calls else END


def build(checkpointer: Any) -> CompiledStateGraph[Any, Any, Any, Any]:
    builder = StateGraph(MessagesState)
    builder.add_node("model", fake_model)
    builder.add_node("tools", ToolNode([add_note]))
    builder.add_edge(START, "model")
    builder.add_conditional_edges("model", route, ["tools", END])
    builder.add_edge("tools", "model")
    return builder.compile(checkpointer=checkpointer)
