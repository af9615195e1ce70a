"""Every OpenTelemetry name the SDK emits, once. Ids of sessions, users, calls' idempotency keys
are never attribute values; lock and tool names are (bounded)."""

from __future__ import annotations

from typing import Final

INSTRUMENTATION_NAME: Final = "memorywatch.agent"
"""Tracer and meter name (the instrumentation scope)."""

# GenAI semantic conventions ----------------------------------------------------------------------
GEN_AI_OPERATION_NAME: Final = "gen_ai.operation.name"
"""Always ``execute_tool`` on tool spans."""
GEN_AI_OPERATION_EXECUTE_TOOL: Final = "execute_tool"
GEN_AI_TOOL_NAME: Final = "gen_ai.tool.name"
GEN_AI_TOOL_CALL_ID: Final = "gen_ai.tool.call.id"
"""The model's tool-call id when the caller passes one; never the idempotency key."""
GEN_AI_EXECUTE_TOOL_DURATION: Final = "gen_ai.execute_tool.duration"
"""Histogram (s) of tool function executions (replays are not executions)."""
ERROR_TYPE: Final = "error.type"

# Database client connection pool (OTel DB client semconv) --------------------------------------
DB_CLIENT_CONNECTION_POOL_NAME: Final = "db.client.connection.pool.name"
DB_CLIENT_CONNECTION_MAX: Final = "db.client.connection.max"
DB_CLIENT_CONNECTION_PENDING_REQUESTS: Final = "db.client.connection.pending_requests"
DB_CLIENT_CONNECTION_TIMEOUTS: Final = "db.client.connection.timeouts"
DB_CLIENT_CONNECTION_WAIT_TIME: Final = "db.client.connection.wait_time"
"""Recorded here for failed waits only; redis-py records the successful ones."""
DB_SYSTEM_NAME: Final = "db.system.name"
DB_SYSTEM_REDIS: Final = "redis"

# memorywatch-specific --------------------------------------------------------------------------
LOCK_NAME: Final = "memorywatch.lock.name"
LOCK_ATTEMPTS: Final = "memorywatch.lock.attempts"
LOCK_OUTCOME: Final = "memorywatch.lock.outcome"
"""``acquired`` or ``timeout``."""
LOCK_FENCING_TOKEN: Final = "memorywatch.lock.fencing_token"  # noqa: S105
TOOL_OUTCOME: Final = "memorywatch.tool.outcome"
"""``executed``, ``replayed``, ``in_progress``, ``mismatch``."""
TOOL_RECLAIMED: Final = "memorywatch.tool.reclaimed"
TOOL_FENCING_TOKEN: Final = "memorywatch.tool.fencing_token"  # noqa: S105

SPAN_LOCK_WAIT: Final = "memorywatch.lock.wait"
SPAN_EXECUTE_TOOL_PREFIX: Final = "execute_tool"
"""Tool span name is ``execute_tool {tool}``."""
