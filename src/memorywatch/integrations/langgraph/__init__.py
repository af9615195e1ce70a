"""LangGraph on memorywatch: checkpoint savers on plain Redis 7 (``pip install
memorywatch[langgraph]``). See docs/integrations.md, "LangGraph"."""

from memorywatch.integrations.langgraph.checkpoint import AgentStateSaver, AsyncAgentStateSaver

# --- run_once / arun_once / idempotent_tool (memorywatch.integrations.langgraph.runs) ---------
# The merger adds here:
# from memorywatch.integrations.langgraph.runs import arun_once, idempotent_tool, run_once
# and their names to __all__.
# -----------------------------------------------------------------------------------------------

__all__ = [
    "AgentStateSaver",
    "AsyncAgentStateSaver",
]
