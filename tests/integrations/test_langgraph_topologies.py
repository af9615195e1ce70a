"""The savers on the topologies the SDK supports: Redis Cluster (each thread's keys on one
slot, both clients, runs deleted across slots), a Sentinel-managed master, and durable mode (a
write the replica did not acknowledge is refused and counted)."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from langchain_core.messages import HumanMessage
from lg_graph import build

from harness import LOOPBACK, freeze, master_with_replica, redis_cluster, sentinel_group, thaw
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
            saver = AgentStateSaver(state, max_checkpoints=6)
            graph = build(saver)
            threads = [f"cluster-thread-{i}" for i in range(6)]
            runs = {t: [uuid.uuid4().hex, uuid.uuid4().hex] for t in threads}
            for thread_id in threads:
                for text, run_id in zip(("a", "b"), runs[thread_id], strict=True):
                    config = {"configurable": {"thread_id": thread_id, "run_id": run_id}}
                    graph.invoke({"messages": [HumanMessage(text)]}, config)
            shards = {state.schema.shard(t) for t in threads}
            assert len(shards) > 1  # the threads live on several slots (and nodes)
            for thread_id in threads:
                config = {"configurable": {"thread_id": thread_id}}
                assert len(graph.get_state(config).values["messages"]) == 8
                assert len(list(graph.get_state_history(config))) == 6
            # the first run of each thread goes; its run set lives on another slot mostly
            saver.delete_for_runs([first for first, _ in runs.values()])
            for thread_id in threads:
                config = {"configurable": {"thread_id": thread_id}}
                left = {s.metadata["run_id"] for s in graph.get_state_history(config)}
                assert left == {runs[thread_id][1]}
                assert len(graph.get_state(config).values["messages"]) == 8
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
        # a roomy timeout while the replica is up (a loaded CI machine), a short one to refuse
        patient, strict = (
            AgentState.from_url(
                master.url, namespace=namespace, min_replicas=1, replica_timeout=timeout
            )
            for timeout in (3.0, 0.3)
        )
        try:
            config = {"configurable": {"thread_id": "durable-thread"}}
            build(AgentStateSaver(patient)).invoke({"messages": [HumanMessage("kept")]}, config)
            graph = build(AgentStateSaver(strict))
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
                strict.schema.stats(schema.FAMILY_STATE_NOT_DURABLE, "durable-thread"),
                refused.value.op,
            )
            assert int(counted or 0) >= 1
            raw.close()
        finally:
            patient.close()
            strict.close()


def test_a_sentinel_managed_master_through_the_state_url() -> None:
    with sentinel_group("agents") as (master, _, sentinel):
        url = f"redis+sentinel://{LOOPBACK}:{sentinel.port}/agents"
        state = AgentState.from_url(url, namespace="lgs")
        try:
            graph = build(AgentStateSaver(state))
            config = {"configurable": {"thread_id": "sentinel-thread"}}
            graph.invoke({"messages": [HumanMessage("via sentinel")]}, config)
        finally:
            state.close()
        raw = master.client()
        assert raw.exists(f"lgs:{{0}}:{schema.KIND_CHECKPOINTS}:sentinel-thread") == 1
        raw.close()
