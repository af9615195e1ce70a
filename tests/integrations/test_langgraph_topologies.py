"""The savers on the topologies the SDK supports: Redis Cluster (each thread's keys on one
slot, both clients) and durable mode (a write the replica did not acknowledge is refused and
counted)."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from langchain_core.messages import HumanMessage
from test_langgraph_saver import build

from harness import LOOPBACK, freeze, master_with_replica, redis_cluster, thaw
from memorywatch import schema
from memorywatch.agent import AgentState, StateNotDurable
from memorywatch.agent import aio as agent_aio
from memorywatch.integrations.langgraph import AgentStateSaver, AsyncAgentStateSaver

pytestmark = pytest.mark.slow


def test_threads_spread_over_a_cluster_with_both_savers() -> None:
    with redis_cluster() as nodes:
        url = f"redis+cluster://{LOOPBACK}:{nodes[0].port}"
        state = AgentState.from_url(url, namespace="lgc")
        try:
            graph = build(AgentStateSaver(state, max_checkpoints=6))
            threads = [f"cluster-thread-{i}" for i in range(6)]
            for thread_id in threads:
                for text in ("a", "b"):
                    graph.invoke(
                        {"messages": [HumanMessage(text)]},
                        {"configurable": {"thread_id": thread_id}},
                    )
            shards = {state.schema.shard(t) for t in threads}
            assert len(shards) > 1  # the threads live on several slots (and nodes)
            for thread_id in threads:
                config = {"configurable": {"thread_id": thread_id}}
                assert len(graph.get_state(config).values["messages"]) == 8
                assert len(list(graph.get_state_history(config))) == 6
        finally:
            state.close()

        async def run() -> int:
            astate = agent_aio.AgentState.from_url(url, namespace="lgc")
            try:
                agraph = build(AsyncAgentStateSaver(astate))
                config = {"configurable": {"thread_id": "cluster-thread-0"}}
                out = await agraph.ainvoke({"messages": [HumanMessage("c")]}, config)
                return len(out["messages"])
            finally:
                await astate.aclose()

        assert asyncio.run(run()) == 12  # the async saver continues what the sync one wrote


def test_durable_mode_refuses_a_checkpoint_the_replica_did_not_acknowledge() -> None:
    with master_with_replica() as (master, replica):
        namespace = f"lgd{uuid.uuid4().hex[:6]}"
        state = AgentState.from_url(
            master.url, namespace=namespace, min_replicas=1, replica_timeout=0.3
        )
        try:
            graph = build(AgentStateSaver(state))
            config = {"configurable": {"thread_id": "durable-thread"}}
            graph.invoke({"messages": [HumanMessage("kept")]}, config)
            assert len(graph.get_state(config).values["messages"]) == 4
            freeze(replica)
            try:
                with pytest.raises(StateNotDurable) as refused:
                    graph.invoke({"messages": [HumanMessage("not durable")]}, config)
            finally:
                thaw(replica)
            assert refused.value.op in (
                schema.DURABLE_CHECKPOINT_PUT,
                schema.DURABLE_CHECKPOINT_WRITES,
            )
            raw = master.client()
            counted = raw.hget(
                state.schema.stats(schema.FAMILY_STATE_NOT_DURABLE, "durable-thread"),
                refused.value.op,
            )
            assert counted == "1"
            raw.close()
        finally:
            state.close()
