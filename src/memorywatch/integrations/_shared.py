"""What the framework integrations share: calling a sync or an asyncio AgentState alike, and
binding the context variables their helpers read (``tool_context()`` and the like)."""

from __future__ import annotations

import contextvars
import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from memorywatch.agent import AgentState, aio

AnyState = AgentState | aio.AgentState
T = TypeVar("T")


def check_state(state: Any) -> AnyState:
    if not isinstance(state, AgentState | aio.AgentState):
        raise TypeError(
            "state must be a memorywatch.agent.AgentState or memorywatch.agent.aio.AgentState, "
            f"not {type(state).__name__}"
        )
    return state


async def call(fn: Callable[..., Any], *args: Any) -> Any:
    """Await an asyncio state's method; call a sync state's method in place (one Redis round
    trip blocks the loop; the sync state is meant for ``Runner.run_sync`` and sync apps)."""
    result = fn(*args)
    return await result if inspect.isawaitable(result) else result


@contextmanager
def bound(var: contextvars.ContextVar[T], value: T) -> Iterator[None]:
    """``var`` set to ``value`` inside the block, reset after it."""
    token = var.set(value)
    try:
        yield
    finally:
        var.reset(token)
