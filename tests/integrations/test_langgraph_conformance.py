"""LangGraph's own conformance suite (langgraph-checkpoint-conformance) against
AsyncAgentStateSaver on a real Redis 7 without modules: every base capability passes, and so
does every extended one (the suite detects all three)."""

from __future__ import annotations

import asyncio
import contextlib
import io
import uuid
from collections.abc import AsyncIterator

import pytest
from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.capabilities import BASE_CAPABILITIES

from harness import RedisServer
from memorywatch.agent.aio import AgentState
from memorywatch.integrations.langgraph import AsyncAgentStateSaver
from summary import Recorder

pytestmark = pytest.mark.slow

EXTENDED_SUPPORTED = {"copy_thread", "delete_for_runs", "prune"}


def test_conformance_suite_passes(server: RedisServer, conformance_reports: Recorder) -> None:
    namespace = f"lg{uuid.uuid4().hex[:8]}"

    @checkpointer_test(name="AsyncAgentStateSaver (memorywatch, Redis 7, no modules)")
    async def saver() -> AsyncIterator[AsyncAgentStateSaver]:
        state = AgentState.from_url(server.url, namespace=namespace)
        try:
            yield AsyncAgentStateSaver(state)
        finally:
            await state.aclose()

    async def run() -> str:
        report = await validate(saver)
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            report.print_report()
        assert report.passed_all_base(), out.getvalue()
        results = report.results
        for capability in BASE_CAPABILITIES:
            assert results[capability.value].passed is True, out.getvalue()
        for name in EXTENDED_SUPPORTED:
            assert results[name].detected and results[name].passed is True, out.getvalue()
        return out.getvalue()

    conformance_reports.append(asyncio.run(run()))
