"""Every failure the SDK reports is an :class:`AgentStateError`; the subclass names the cause."""

from __future__ import annotations

from redis import exceptions as rex


class AgentStateError(Exception):
    """Base class: the agent's state operation did not happen as asked."""


class StateUnavailable(AgentStateError):
    """Redis could not be reached, timed out or dropped the connection mid-operation."""


class StateLoading(StateUnavailable):
    """Redis is loading its dataset after a restart and refuses commands."""


class PoolExhausted(StateUnavailable):
    """No connection became free in the client pool within its timeout."""


class StateReadOnly(AgentStateError):
    """Redis refused a write: a read-only replica (failover in progress?) or MISCONF."""


class StateOutOfMemory(AgentStateError):
    """Redis refused a write because used memory is above maxmemory (noeviction)."""


class StateNotDurable(AgentStateError):
    """Durable mode: fewer replicas than ``min_replicas`` acknowledged the write within
    ``replica_timeout`` (counted as ``memorywatch_state_not_durable_total{op}``).

    The write reached the master and may or may not survive a failover: treat the operation
    as not done. A tool claim or a lock refused this way is given back first (the tool's
    function never runs); a refused completion carries the function's return in
    ``result``. ``op`` is one of ``schema.DURABLE_OPS``."""

    def __init__(self, op: str, acked: int, wanted: int, message: str, result: object = None):
        super().__init__(message)
        self.op = op
        self.acked = acked
        self.wanted = wanted
        self.result = result


class StateCommandError(AgentStateError):
    """Redis answered with another error (a bug, a permission, a cluster error)."""


class SchemaMismatch(AgentStateError):
    """The schema stored in Redis is not the one this SDK writes (version or shard count)."""


class StateMiss(AgentStateError):
    """State that Redis should hold is gone: evicted or deleted while still referenced.

    ``kind`` is the counter field (``history``, ``tool_record``). The miss is already counted in
    the fleet counters when this is raised.
    """

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class LockError(AgentStateError):
    """Base class of lock failures."""


class LockTimeout(LockError):
    """The lock stayed held by someone else for the whole wait (counted)."""


class LockLost(LockError):
    """The lock (or tool claim) expired or was taken over before we released it (counted)."""


class ToolError(AgentStateError):
    """Base class of idempotent tool failures."""


class ToolInProgress(ToolError):
    """Another holder runs the same idempotency key under a live claim (Stripe: key in use)."""

    def __init__(self, tool: str, retry_after: float) -> None:
        super().__init__(
            f"tool {tool!r}: the same call is in progress; retry in {retry_after:.3f}s"
        )
        self.tool = tool
        self.retry_after = retry_after


class FingerprintMismatch(ToolError):
    """The idempotency key was used before with other arguments (counted)."""


class ToolFailed(ToolError):
    """The recorded outcome of this call is a final error; replays raise it again."""

    def __init__(self, tool: str, error_type: str, error_message: str) -> None:
        super().__init__(f"tool {tool!r} failed earlier with {error_type}: {error_message}")
        self.tool = tool
        self.error_type = error_type
        self.error_message = error_message


class ToolClaimLost(ToolError, LockLost):
    """Completion found the claim gone or taken: the caller did run ``fn``; its outcome may
    not be the recorded one. ``result`` holds what ``fn`` returned (None if it raised)."""

    def __init__(self, message: str, result: object = None) -> None:
        super().__init__(message)
        self.result = result


class DuplicateExecution(ToolClaimLost):
    """Our claim was reclaimed by another instance after its deadline: the side effect may
    have run twice (counted). The record keeps the other holder's outcome."""


class RetryableToolError(Exception):
    """Raise (or subclass) in a tool to say "try again later": the key is freed, not stored."""


def add_failure_note(exc: BaseException, what: str, err: BaseException) -> None:
    """Attach a bookkeeping failure of the SDK (a lost lock at release, an unrecorded turn) to
    the caller's exception already propagating, instead of replacing that exception."""
    exc.add_note(f"memorywatch: {what}: {err!r}")


MOVED_OR_DOWN = (rex.AskError, rex.ClusterDownError, rex.TryAgainError)
"""Replies of a Cluster node that say the slot map changed (MOVED, ASK) or is changing."""


def translate(exc: rex.RedisError, operation: str) -> AgentStateError:
    """Map a redis-py exception to the SDK error that names the failure."""
    detail = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, rex.BusyLoadingError):
        return StateLoading(f"{operation}: Redis is loading its dataset ({detail})")
    if isinstance(exc, rex.MaxConnectionsError) or "No connection available" in str(exc):
        return PoolExhausted(f"{operation}: connection pool exhausted ({detail})")
    if isinstance(exc, rex.ConnectionError | rex.TimeoutError):
        return StateUnavailable(f"{operation}: Redis unreachable or restarting ({detail})")
    if isinstance(exc, rex.ReadOnlyError) or str(exc).startswith("MISCONF"):
        return StateReadOnly(f"{operation}: Redis refused the write ({detail})")
    if isinstance(exc, rex.OutOfMemoryError) or str(exc).startswith("OOM"):
        return StateOutOfMemory(f"{operation}: Redis is out of memory ({detail})")
    if isinstance(exc, (*MOVED_OR_DOWN, rex.MasterDownError)):
        return StateUnavailable(f"{operation}: Redis Cluster unavailable ({detail})")
    return StateCommandError(f"{operation}: Redis error ({detail})")
