"""The parity suite: every agent scenario runs on the sync and on the asyncio client, and the
Redis state, the errors, the spans and the exporter's view must be the same (parity.py)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis
from parity import Outcome, Steps, compare, run_both
from parity_scenarios import CASES, _tool

from harness import RedisServer
from memorywatch import names, schema
from memorywatch.agent import Settings


def both(server: RedisServer, raw: redis.Redis, scenario: Any, **settings: Any) -> Outcome:
    sync, asyncio_ = run_both(server.url, raw, scenario, Settings(**settings) if settings else None)
    compare(sync, asyncio_)
    return sync


def case(server: RedisServer, raw: redis.Redis, name: str) -> Outcome:
    """The scenario of that name, with its settings (parity_scenarios.CASES)."""
    scenario, settings = CASES[name]
    return both(server, raw, scenario, **settings)


def test_memory_parity(server: RedisServer, raw: redis.Redis) -> None:
    outcome = case(server, raw, "memory")
    assert outcome.exporter[f"{names.STATE_MISSES}[('kind', 'history')]"] == 1
    assert outcome.exporter[f"{names.TURN_DURATION}_count[]"] == 2


def test_lock_parity(server: RedisServer, raw: redis.Redis) -> None:
    outcome = case(server, raw, "locks")
    view = outcome.exporter
    assert view[f"{names.LOCK_ACQUISITIONS}[('lock', 'charge')]"] == 4
    assert view[f"{names.LOCK_ACQUISITIONS}[('lock', 'order')]"] == 1
    assert view[f"{names.LOCK_ACQUISITIONS}[('lock', 'other')]"] == 2  # k3, k4: past the cap
    assert view[f"{names.LOCKS_LOST}[('lock', 'charge')]"] == 2
    assert view[f"{names.LOCK_TIMEOUTS}[('lock', 'charge')]"] == 1
    assert not any("order-4" in key for key in view)  # resources are never labels
    body_error = str(KeyError("the body's own error"))
    assert ("KeyError", body_error, 1) in outcome.log  # the failed release is a note on it


def test_tool_parity(server: RedisServer, raw: redis.Redis) -> None:
    outcome = case(server, raw, "tools")
    view = outcome.exporter
    assert view[f"{names.TOOL_DUPLICATES_SUPPRESSED}[('tool', 'create_ticket')]"] == 2
    assert view[f"{names.TOOL_RECLAIMS}[('tool', 'send_email')]"] == 1
    assert view[f"{names.TOOL_IN_PROGRESS_CONFLICTS}[('tool', 'send_email')]"] == 1
    assert any(span[0] == "execute_tool report" for span in outcome.spans)


def test_health_parity(server: RedisServer, raw: redis.Redis) -> None:
    outcome = case(server, raw, "health")
    assert outcome.exporter[f"{names.AGENT_INSTANCES}[('state', 'ready')]"] == 1


def test_first_write_of_either_client_makes_the_fleet_visible(
    server: RedisServer, raw: redis.Redis
) -> None:
    outcome = case(server, raw, "first_write")
    assert outcome.exporter[f"{names.SCHEMA_INFO}[('version', '2')]"] == 1


def test_version_1_data_is_refused_in_one_line_by_both(
    server: RedisServer, raw: redis.Redis
) -> None:
    outcome = case(server, raw, "old_schema")
    assert outcome.exporter[f"{names.SCHEMA_INFO}[('version', '1')]"] == 1
    assert outcome.exporter[f"{names.AGENT_INSTANCES}[('state', 'not_ready')]"] == 0


def test_unreachable_redis_fails_the_same_way_on_both() -> None:
    from harness import free_port
    from memorywatch.agent import AgentState, StateUnavailable, aio

    url = f"redis://127.0.0.1:{free_port()}"
    sync = AgentState.from_url(url, socket_timeout=0.3)
    with pytest.raises(StateUnavailable) as sync_error:
        sync.history("s").append("user", "hi")
    sync_report = sync.ready(deadline=0.5)
    sync.close()

    async def main() -> tuple[BaseException, Any]:
        async with aio.AgentState.from_url(url, socket_timeout=0.3) as state:
            try:
                await state.history("s").append("user", "hi")
            except StateUnavailable as exc:
                return exc, await state.ready(deadline=0.5)
        raise AssertionError("no error")

    async_error, async_report = asyncio.run(main())
    assert str(sync_error.value).split(" (")[0] == str(async_error).split(" (")[0]
    assert str(async_error).startswith("history.append: Redis unreachable")
    assert not sync_report and not async_report
    assert sync_report.as_dict() | {"error": ""} == async_report.as_dict() | {"error": ""}


def test_ready_report_is_falsy_when_redis_is_down() -> None:
    """``if state.ready():`` must mean ready."""
    from harness import free_port
    from memorywatch.agent import AgentState

    state = AgentState.from_url(f"redis://127.0.0.1:{free_port()}", socket_timeout=0.3)
    report = state.ready(deadline=0.5)
    state.close()
    assert not report
    assert report.reachable is False and report.error


def test_counter_hashes_stay_bounded_however_callers_name_things(
    server: RedisServer, raw: redis.Redis
) -> None:
    async def many_names(c: Any, s: Steps) -> None:
        for i in range(30):
            async with c.lock(f"job{chr(97 + i % 26)}{i}", ttl=5):  # 30 distinct kinds
                pass
            await c.run_tool(f"tool{chr(97 + i % 26)}{i}", f"k{i}", _tool, "o")

    outcome = both(server, raw, many_names, name_cap=10)
    layout = schema.Schema(outcome.namespace, 1)
    waits = raw.hgetall(layout.stats_keys(schema.FAMILY_LOCK_WAIT)[0])
    assert {field.split("|")[0] for field in waits} == {
        *(f"job{chr(97 + i)}{i}" for i in range(10)),
        "other",
    }
    executions = raw.hgetall(layout.stats_keys(schema.FAMILY_TOOL_EXECUTIONS)[0])
    assert len(executions) == 11 and executions["other|completed"] == "20"
    assert raw.scard(layout.names("lock", "x")) == raw.scard(layout.names("tool", "x")) == 10


def test_out_of_memory_parity(server: RedisServer, raw: redis.Redis) -> None:
    outcome = case(server, raw, "out_of_memory")
    assert outcome.log[-1] == "[false, true, false]"


CHECKPOINT_OPS = (schema.DURABLE_CHECKPOINT_PUT, schema.DURABLE_CHECKPOINT_WRITES)
"""Durable writes of the LangGraph savers (tests/integrations): not in this scenario."""


def test_durable_mode_refusals_parity(server: RedisServer, raw: redis.Redis) -> None:
    outcome = case(server, raw, "not_durable")
    view = outcome.exporter
    for op in schema.DURABLE_OPS:
        unused = (schema.DURABLE_TOOL_COMPLETE, *CHECKPOINT_OPS)  # zero-filled
        counted = 0 if op in unused else 1
        assert view[f"{names.STATE_NOT_DURABLE}[('op', '{op}')]"] == counted, op
    assert outcome.log[1] == '[[], "tool_claim", 0, 1, null]'  # the function never ran
    assert outcome.log[2] == "0"
    refusals = [span for span in outcome.spans if span[0] == "memorywatch.state.not_durable"]
    assert len(refusals) == 3
