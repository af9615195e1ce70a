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

DURABLE_OP: Final = "memorywatch.durable.op"
"""Which durable write (``schema.DURABLE_OPS``): a closed set."""
REPLICAS_ACKED: Final = "memorywatch.replicas.acked"
REPLICAS_WANTED: Final = "memorywatch.replicas.wanted"
REPLICA_TIMEOUT: Final = "memorywatch.replicas.timeout"
"""Seconds the write waited for its replicas."""
STATE_NOT_DURABLE: Final = "memorywatch.state.not_durable"
"""Counter, and the span of a refused durable write."""

SPAN_LOCK_WAIT: Final = "memorywatch.lock.wait"
SPAN_EXECUTE_TOOL_PREFIX: Final = "execute_tool"
"""Tool span name is ``execute_tool {tool}``."""

# GenAI memory operations (semantic-conventions-genai, development status) ------------------------
GEN_AI_OPERATION_UPDATE_MEMORY: Final = "update_memory"
GEN_AI_OPERATION_SEARCH_MEMORY: Final = "search_memory"
GEN_AI_OPERATION_DELETE_MEMORY: Final = "delete_memory"
GEN_AI_PROVIDER_NAME: Final = "gen_ai.provider.name"
GEN_AI_MEMORY_STORE_NAME: Final = "gen_ai.memory.store.name"
"""``history`` or ``preferences``: which store of the agent state, never a session or user id."""
GEN_AI_MEMORY_TYPE: Final = "gen_ai.memory.type"
"""``short_term`` (a session's history) or ``long_term`` (a user's preferences)."""
GEN_AI_MEMORY_SCOPE: Final = "gen_ai.memory.scope"
"""``session`` or ``user``. ``gen_ai.memory.namespace`` and ``gen_ai.conversation.id`` would
hold user and session ids: the SDK never sets them."""
GEN_AI_MEMORY_UPDATE_STRATEGY: Final = "gen_ai.memory.update.strategy"
"""``append`` (history) or ``merge`` (preferences)."""
GEN_AI_MEMORY_SEARCH_RESULT_COUNT: Final = "gen_ai.memory.search.result.count"
MEMORY_ITEMS: Final = "memorywatch.memory.items"
"""Messages appended or preferences written by an ``update_memory`` span; keys removed by a
``delete_memory`` span."""
STORE_HISTORY: Final = "history"
STORE_PREFERENCES: Final = "preferences"
STORE_CHECKPOINTS: Final = "checkpoints"
"""LangGraph checkpoints (``memorywatch.integrations.langgraph``)."""
CHECKPOINT_OP: Final = "memorywatch.checkpoint.op"
"""The saver call of a checkpoints span: ``put``, ``put_writes``, ``get_tuple``, ``list``,
``delete_thread``, ``copy_thread``, ``prune``, ``delete_for_runs`` (a closed set)."""
