"""Idempotent tools: replay, fingerprint, stored errors, retryable errors, concurrency, reclaim,
duplicate execution, lost records, derived keys, OpenTelemetry without ids."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
import redis
from agent_helpers import counters
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from harness import wait_until
from memorywatch import schema
from memorywatch.agent import (
    AgentState,
    DuplicateExecution,
    FingerprintMismatch,
    RetryableToolError,
    ToolClaimLost,
    ToolContext,
    ToolFailed,
    ToolInProgress,
    ToolOptions,
    idempotent_tool,
)
from memorywatch.agent import attributes as attr

KEY = "idem-7b1f0c2e-secret-key"


class Effects:
    def __init__(self) -> None:
        self.calls: list[tuple[ToolContext, tuple[Any, ...]]] = []

    def __call__(self, ctx: ToolContext, *args: Any) -> dict[str, Any]:
        self.calls.append((ctx, args))
        return {"ticket": f"T-{len(self.calls)}", "args": list(args)}


def test_happy_path_then_replay_is_suppressed(
    state: AgentState, raw: redis.Redis, namespace: str
) -> None:
    fn = Effects()
    first = state.run_tool("create_ticket", KEY, fn, "order-42", 2)
    second = state.run_tool("create_ticket", KEY, fn, "order-42", 2)
    assert first == second == {"ticket": "T-1", "args": ["order-42", 2]}
    assert len(fn.calls) == 1
    ctx = fn.calls[0][0]
    assert ctx.fencing_token == 1 and not ctx.reclaimed and ctx.tool == "create_ticket"
    assert KEY not in ctx.idempotency_key and ctx.idempotency_key.startswith("mw-")
    record = raw.hgetall(state.schema.tool(KEY))
    assert record["state"] == "completed"
    assert record["instance"] == "agent-1"
    assert int(record["ended_ms"]) >= int(record["started_ms"])
    assert 0 < raw.pttl(state.schema.tool(KEY)) <= schema.DEFAULT_TOOL_RETENTION * 1000
    assert counters(raw, namespace, schema.FAMILY_TOOL_EXECUTIONS) == {"create_ticket|completed": 1}
    assert counters(raw, namespace, schema.FAMILY_TOOL_DUPLICATES_SUPPRESSED) == {
        "create_ticket": 1
    }


def test_replay_with_other_arguments_is_an_error(
    state: AgentState, raw: redis.Redis, namespace: str
) -> None:
    fn = Effects()
    state.run_tool("create_ticket", KEY, fn, "order-42")
    with pytest.raises(FingerprintMismatch):
        state.run_tool("create_ticket", KEY, fn, "order-43")
    assert len(fn.calls) == 1
    assert counters(raw, namespace, schema.FAMILY_TOOL_FINGERPRINT_MISMATCHES) == {
        "create_ticket": 1
    }


def test_final_error_is_stored_and_replayed(
    state: AgentState, raw: redis.Redis, namespace: str
) -> None:
    calls = []

    def refuse(ctx: ToolContext) -> None:
        calls.append(ctx)
        raise ValueError("card declined")

    with pytest.raises(ValueError, match="card declined"):
        state.run_tool("charge", KEY, refuse)
    with pytest.raises(ToolFailed) as info:
        state.run_tool("charge", KEY, refuse)
    assert info.value.error_type == "ValueError"
    assert "card declined" in info.value.error_message
    assert len(calls) == 1
    assert counters(raw, namespace, schema.FAMILY_TOOL_EXECUTIONS) == {"charge|failed": 1}


def test_retryable_error_frees_the_key(state: AgentState, raw: redis.Redis, namespace: str) -> None:
    calls = []

    def flaky(ctx: ToolContext) -> str:
        calls.append(ctx.fencing_token)
        if len(calls) == 1:
            raise RetryableToolError("503 from provider")
        return "ok"

    with pytest.raises(RetryableToolError):
        state.run_tool("charge", KEY, flaky)
    assert state.run_tool("charge", KEY, flaky) == "ok"
    assert calls == [1, 2]  # the fencing token keeps rising across the freed key
    assert counters(raw, namespace, schema.FAMILY_TOOL_EXECUTIONS) == {
        "charge|retryable": 1,
        "charge|completed": 1,
    }


def test_concurrent_caller_gets_in_progress_or_waits_for_the_result(
    state: AgentState, raw: redis.Redis, namespace: str
) -> None:
    release = threading.Event()
    started = threading.Event()

    def slow(ctx: ToolContext) -> str:
        started.set()
        assert release.wait(10)
        return "done"

    results: list[str] = []
    runner = threading.Thread(target=lambda: results.append(state.run_tool("book", KEY, slow)))
    runner.start()
    assert started.wait(5)
    with pytest.raises(ToolInProgress) as info:
        state.run_tool("book", KEY, slow, tool_options=ToolOptions(wait=0))
    assert 0 < info.value.retry_after <= schema.DEFAULT_TOOL_DEADLINE
    began = time.monotonic()
    with pytest.raises(ToolInProgress):  # a wait that runs out before the first call ends
        state.run_tool("book", KEY, slow, tool_options=ToolOptions(wait=0.3))
    assert time.monotonic() - began >= 0.3
    waiter: list[str] = []  # a refresh with the default wait gets the first call's answer
    second = threading.Thread(target=lambda: waiter.append(state.run_tool("book", KEY, slow)))
    second.start()
    wait_until(
        lambda: counters(raw, namespace, schema.FAMILY_TOOL_IN_PROGRESS_CONFLICTS).get("book") == 3,
        what="second conflict",
    )
    release.set()
    runner.join(10)
    second.join(10)
    assert results == ["done"] and waiter == ["done"]
    assert counters(raw, namespace, schema.FAMILY_TOOL_DUPLICATES_SUPPRESSED) == {"book": 1}


def test_reclaim_after_deadline_and_duplicate_execution_is_raised(
    state: AgentState, raw: redis.Redis, namespace: str
) -> None:
    """A holder outlives its 0.3 s deadline; another caller reclaims; the first learns at
    completion that it lost its claim and that the side effect may have run twice."""
    side_effects: list[int] = []
    stalled = threading.Event()
    resume = threading.Event()

    def stalls(ctx: ToolContext) -> str:
        side_effects.append(ctx.fencing_token)
        stalled.set()
        assert resume.wait(10)
        return "first"

    def quick(ctx: ToolContext) -> str:
        side_effects.append(ctx.fencing_token)
        assert ctx.reclaimed
        return "second"

    errors: list[BaseException] = []

    def first() -> None:
        try:
            state.run_tool("ship", KEY, stalls, tool_options=ToolOptions(deadline=0.3))
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=first)
    thread.start()
    assert stalled.wait(5)
    record_key = state.schema.tool(KEY)
    wait_until(
        lambda: (
            raw.time()[0] * 1000 + raw.time()[1] // 1000 > int(raw.hget(record_key, "deadline_ms"))
        ),
        what="deadline passed",
    )
    assert state.run_tool("ship", KEY, quick, tool_options=ToolOptions(deadline=0.3)) == "second"
    resume.set()
    thread.join(10)
    assert side_effects == [1, 2]
    assert len(errors) == 1 and isinstance(errors[0], DuplicateExecution)
    assert errors[0].result == "first"
    assert raw.hget(record_key, "result") == '"second"'  # the other holder's outcome is kept
    assert counters(raw, namespace, schema.FAMILY_TOOL_RECLAIMS) == {"ship": 1}
    assert counters(raw, namespace, schema.FAMILY_TOOL_DUPLICATE_EXECUTIONS) == {"ship": 1}
    assert counters(raw, namespace, schema.FAMILY_TOOL_CLAIMS_LOST) == {"ship": 1}


def test_renewal_keeps_a_long_tool_from_being_reclaimed(state: AgentState) -> None:
    def long(ctx: ToolContext) -> str:
        deadline = time.monotonic() + 2.5  # 2.5 x its deadline
        while time.monotonic() < deadline:
            with pytest.raises(ToolInProgress):
                state.run_tool("long", KEY, long, tool_options=ToolOptions(wait=0))
            time.sleep(0.1)
        return "ok"

    opts = ToolOptions(deadline=1.0, renew=True)
    assert state.run_tool("long", KEY, long, tool_options=opts) == "ok"


def test_record_lost_mid_run_is_reported_and_written_back(
    state: AgentState, raw: redis.Redis, namespace: str
) -> None:
    def evicts(ctx: ToolContext) -> str:
        raw.delete(state.schema.tool(KEY))
        return "made it"

    with pytest.raises(ToolClaimLost) as info:
        state.run_tool("notify", KEY, evicts)
    assert info.value.result == "made it"
    assert counters(raw, namespace, schema.FAMILY_TOOL_CLAIMS_LOST) == {"notify": 1}
    assert counters(raw, namespace, schema.FAMILY_STATE_MISSES) == {"tool_record": 1}
    assert state.run_tool("notify", KEY, evicts) == "made it"  # replays see the outcome


def test_decorator(state: AgentState) -> None:
    calls: list[str] = []

    @idempotent_tool(state, key=lambda order_id, **_: f"ticket:{order_id}")
    def create_ticket(ctx: ToolContext, order_id: str, priority: str = "low") -> str:
        calls.append(order_id)
        return f"{order_id}/{priority}/{ctx.fencing_token}"

    assert create_ticket("42", priority="high") == "42/high/1"
    assert create_ticket("42", priority="high") == "42/high/1"
    assert calls == ["42"]
    with pytest.raises(FingerprintMismatch):
        create_ticket("42", priority="low")


def test_telemetry_follows_genai_conventions_and_never_records_ids(
    state: AgentState, spans: InMemorySpanExporter, metric_reader: InMemoryMetricReader
) -> None:
    state.history("session-secret-1", user_id="user-secret-1").append("user", "hi")
    state.run_tool("create_ticket", KEY, Effects(), tool_options=ToolOptions(call_id="call_abc"))
    state.run_tool("create_ticket", KEY, Effects(), tool_options=ToolOptions(call_id="call_abc"))
    with pytest.raises(ValueError):
        state.run_tool("broken", KEY + "2", _raise)
    finished = [s for s in spans.get_finished_spans() if s.name.startswith("execute_tool")]
    assert [s.name for s in finished] == ["execute_tool create_ticket"] * 2 + [
        "execute_tool broken"
    ]
    first = finished[0]
    assert first.kind.name == "INTERNAL"
    assert first.attributes is not None
    assert first.attributes[attr.GEN_AI_OPERATION_NAME] == "execute_tool"
    assert first.attributes[attr.GEN_AI_TOOL_NAME] == "create_ticket"
    assert first.attributes[attr.GEN_AI_TOOL_CALL_ID] == "call_abc"
    assert finished[2].attributes is not None
    assert finished[2].attributes[attr.ERROR_TYPE] == "ValueError"

    data = metric_reader.get_metrics_data()
    assert data is not None
    points = [
        (m.name, dict(p.attributes or {}), getattr(p, "count", None))
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        for p in m.data.data_points
    ]
    durations = [p for p in points if p[0] == attr.GEN_AI_EXECUTE_TOOL_DURATION]
    assert sorted((a[attr.GEN_AI_TOOL_NAME], c) for _, a, c in durations) == [
        ("broken", 1),
        ("create_ticket", 1),  # the replay is not an execution
    ]
    everything = repr([(s.name, dict(s.attributes or {})) for s in spans.get_finished_spans()])
    everything += repr(points)
    for secret in (KEY, "secret", state.run_tool.__name__ + KEY):
        assert secret not in everything
    import hashlib

    assert hashlib.sha256(KEY.encode()).hexdigest()[:16] not in everything


def _raise(ctx: ToolContext) -> None:
    raise ValueError("boom")
