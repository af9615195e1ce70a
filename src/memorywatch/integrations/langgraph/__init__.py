"""LangGraph on memorywatch (``pip install 'memorywatch[langgraph]'``): checkpoint savers on
plain Redis 7, and runs that are one at a time per thread and at most once per request. See
docs/integrations.md, "LangGraph"."""

from memorywatch.integrations.langgraph.checkpoint import AgentStateSaver, AsyncAgentStateSaver
from memorywatch.integrations.langgraph.runs import (
    OutputNotRecorded,
    RunContext,
    RunInProgress,
    ThreadBusy,
    arun_once,
    current_run,
    idempotent_tool,
    run_once,
    tool_context,
)

__all__ = [
    "AgentStateSaver",
    "AsyncAgentStateSaver",
    "OutputNotRecorded",
    "RunContext",
    "RunInProgress",
    "ThreadBusy",
    "arun_once",
    "current_run",
    "idempotent_tool",
    "run_once",
    "tool_context",
]
