"""What LangGraph's run guarantees cost, against plain LangGraph in the same run.

    python bench/bench_langgraph_runs.py [--turns 100] [--rounds 9]

One offline agent turn (model node, ToolNode with one tool, model node again: three
supersteps) on LangGraph's InMemorySaver, so Redis is only what memorywatch adds. Prints the
per-turn latency of plain ``graph.invoke`` (the peer), of ``run_once`` with the tool wrapped
by ``idempotent_tool`` (run claim + thread lock + tool claim, counters and fencing on), and of
a replay of a recorded request (answered from Redis, no graph run), as ratios to the peer;
and the Redis round trips per turn (script calls, from ``INFO commandstats`` deltas). Interleaved rounds,
median of the per-round ratios (a shared VM drifts within a minute). Loopback only; the
private redis-server is stopped by its pid.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, ToolMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition

from bench_agent import start_redis
from memorywatch.agent import AgentState
from memorywatch.integrations.langgraph.runs import idempotent_tool, run_once


def model(state: MessagesState) -> dict[str, list[AnyMessage]]:
    last = state["messages"][-1]
    if isinstance(last, ToolMessage):
        return {"messages": [AIMessage(f"done: {last.content}")]}
    call = {"name": "lookup", "args": {"q": str(last.content)}, "id": uuid.uuid4().hex}
    return {"messages": [AIMessage("", tool_calls=[call])]}


def lookup(q: str) -> str:
    """Look the query up."""
    return q.upper()


def graph_with(tool: Any) -> Any:
    builder = StateGraph(MessagesState)
    builder.add_node("agent", model)
    builder.add_node("tools", ToolNode([tool]))
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", tools_condition)
    builder.add_edge("tools", "agent")
    return builder.compile(checkpointer=InMemorySaver())


def per_turn(fn: Callable[[int], None], turns: int) -> float:
    """Seconds per turn; every turn is a new thread so histories do not grow."""
    started = time.perf_counter()
    for i in range(turns):
        fn(i)
    return (time.perf_counter() - started) / turns


def commands(client: redis.Redis) -> int:
    """Script calls so far: the SDK's state transitions are all scripts, so these are its
    round trips (commandstats also counts the commands run inside each script)."""
    stats = client.info("commandstats")
    return sum(int(stats.get(k, {}).get("calls", 0)) for k in ("cmdstat_evalsha", "cmdstat_eval"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=9)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mw-bench-") as workdir:
        proc, port = start_redis(Path(workdir))
        try:
            url = f"redis://127.0.0.1:{port}"
            state = AgentState.from_url(url, namespace="bench", instance_id="bench")
            client = redis.Redis.from_url(url)
            plain_graph = graph_with(lookup)
            guarded_graph = graph_with(idempotent_tool(state)(lookup))
            turn = {"messages": [HumanMessage("where is my order")]}
            tag = [0]

            def plain(i: int) -> None:
                plain_graph.invoke(turn, {"configurable": {"thread_id": f"p{tag[0]}-{i}"}})

            def guarded(i: int) -> None:
                cfg = {"configurable": {"thread_id": f"g{tag[0]}-{i}"}}
                run_once(guarded_graph, turn, cfg, request_id="r", state=state)

            def replay(i: int) -> None:
                cfg = {"configurable": {"thread_id": f"g{tag[0]}-{i}"}}
                run_once(guarded_graph, turn, cfg, request_id="r", state=state)

            for fn in (plain, guarded, replay):  # warm: imports, scripts, connections
                fn(-1)
            ratios: dict[str, list[float]] = {"run_once": [], "replay": []}
            seconds: dict[str, list[float]] = {"plain": [], "run_once": [], "replay": []}
            for n in range(options.rounds):
                tag[0] = n
                base = per_turn(plain, options.turns)
                ours = per_turn(guarded, options.turns)
                again = per_turn(replay, options.turns)
                seconds["plain"].append(base)
                seconds["run_once"].append(ours)
                seconds["replay"].append(again)
                ratios["run_once"].append(ours / base)
                ratios["replay"].append(again / base)
            before = commands(client)
            tag[0] = options.rounds
            guarded(0)
            trips = commands(client) - before
            before = commands(client)
            replay(0)
            replay_trips = commands(client) - before
            ms = {k: statistics.median(v) * 1000 for k, v in seconds.items()}
            print(f"one offline agent turn (3 supersteps, 1 tool call), {options.turns} turns x "
                  f"{options.rounds} interleaved rounds, medians")  # fmt: skip
            print(f"  plain graph.invoke (peer)      {ms['plain']:7.3f} ms/turn")
            print(f"  run_once + idempotent_tool     {ms['run_once']:7.3f} ms/turn   "
                  f"{statistics.median(ratios['run_once']):.2f}x the peer, "
                  f"{trips} round trips")  # fmt: skip
            print(f"  replay of a recorded request   {ms['replay']:7.3f} ms/turn   "
                  f"{statistics.median(ratios['replay']):.2f}x the peer, "
                  f"{replay_trips} round trip(s)")  # fmt: skip
            state.close()
        finally:
            proc.terminate()
            proc.wait(10)


if __name__ == "__main__":
    main()
