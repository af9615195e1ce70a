"""memorywatch.agent: the agent-side SDK that writes the schema memorywatch monitors.

Sessions' history, users' preferences, locks with fencing tokens, idempotent tool calls and
instance heartbeats in Redis, with fleet counters kept in Redis itself (see docs/schema.md).
Depends on redis-py and opentelemetry-api only.
"""

from memorywatch.agent._health import Heartbeat
from memorywatch.agent._tools import idempotent_tool
from memorywatch.agent._values import ReadyReport, Settings, ToolContext, ToolOptions
from memorywatch.agent.errors import (
    AgentStateError,
    DuplicateExecution,
    FingerprintMismatch,
    LockError,
    LockLost,
    LockTimeout,
    PoolExhausted,
    RetryableToolError,
    SchemaMismatch,
    StateCommandError,
    StateLoading,
    StateMiss,
    StateNotDurable,
    StateOutOfMemory,
    StateReadOnly,
    StateUnavailable,
    ToolClaimLost,
    ToolError,
    ToolFailed,
    ToolInProgress,
)
from memorywatch.agent.health import asgi_app, wsgi_app
from memorywatch.agent.pool import AsyncInstrumentedPool, InstrumentedPool
from memorywatch.agent.state import AgentState, History, Lease, Preferences, Turn

__all__ = [
    "AgentState",
    "AgentStateError",
    "AsyncInstrumentedPool",
    "DuplicateExecution",
    "FingerprintMismatch",
    "Heartbeat",
    "History",
    "InstrumentedPool",
    "Lease",
    "LockError",
    "LockLost",
    "LockTimeout",
    "PoolExhausted",
    "Preferences",
    "ReadyReport",
    "RetryableToolError",
    "SchemaMismatch",
    "Settings",
    "StateCommandError",
    "StateLoading",
    "StateMiss",
    "StateNotDurable",
    "StateOutOfMemory",
    "StateReadOnly",
    "StateUnavailable",
    "ToolClaimLost",
    "ToolContext",
    "ToolError",
    "ToolFailed",
    "ToolInProgress",
    "ToolOptions",
    "Turn",
    "asgi_app",
    "idempotent_tool",
    "wsgi_app",
]
