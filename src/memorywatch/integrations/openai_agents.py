"""The OpenAI Agents SDK on memorywatch: a session, a run helper and idempotent tools.

- :class:`AgentStateSession` is the SDK's session protocol (``get_items``, ``add_items``,
  ``pop_item``, ``clear_session``) on the memorywatch history of the session: a TTL refreshed on
  every append, the ``max_messages`` bound, the fleet's session counters, and an evicted or
  expired-too-early history raises :class:`~memorywatch.agent.StateMiss` instead of reading as a
  new conversation (the agent would answer with no memory).
- :func:`run_once` / :func:`run_once_sync` run a turn under the session's run lock (one run of a
  session at a time across the fleet, with a fencing token) at most once per ``request_id``: a
  double submit or a replay returns the recorded final output instead of running the turn again.
- :func:`idempotent_tool` wraps a ``FunctionTool`` so each call runs through the SDK's
  idempotent tool path; the running tool reads its fencing token from :func:`tool_context`.

Needs ``memorywatch[openai-agents]``.
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import functools
import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, overload

from agents import Agent, FunctionTool, Runner
from agents.items import TResponseInputItem
from agents.memory.session_settings import SessionSettings, resolve_session_limit
from agents.tool_context import ToolContext as AgentsToolContext

from memorywatch.agent import AgentState, ToolContext, ToolOptions, aio
from memorywatch.integrations._shared import bound, call, check_state

RUN_LOCK: Final = "agent_run"
"""Lock kind of a session's run lock (the ``lock`` label of the fleet's lock metrics)."""
RUN_RECORD: Final = "agent_run"
"""Tool name of the per-request run record (the ``tool`` label of the tool metrics)."""
DEFAULT_RUN_WAIT: Final = 30.0
"""How long a run waits for the session's run lock (then ``LockTimeout``): a double submit
waits for the first run's turn (one model turn with its tools, typically seconds)."""

_TEXT: Final = "content_in_text"
"""Marks a stored message whose item's string ``content`` is kept once, in ``text``."""


@dataclass
class _Run:
    """The run :func:`run_once` is inside of (a context variable, copied into tool tasks)."""

    session_id: str
    request_id: str
    fencing_token: int
    record: ToolContext
    calls: dict[str, itertools.count[int]] = field(default_factory=dict)

    def call_key(self, tool: str) -> str:
        """The n-th call of ``tool`` in this request: stable when the turn is run again after
        a crash, where the model's call ids are fresh."""
        n = next(self.calls.setdefault(tool, itertools.count(1)))
        return f"{self.session_id}:{self.request_id}:{tool}:{n}"


_RUN: contextvars.ContextVar[_Run | None] = contextvars.ContextVar("mw_oa_run", default=None)
_TOOL: contextvars.ContextVar[ToolContext | None] = contextvars.ContextVar(
    "mw_oa_tool", default=None
)


def tool_context() -> ToolContext:
    """The memorywatch context of the idempotent tool call running now: its
    ``fencing_token`` (rises on every claim; hand it to the downstream system so it rejects a
    stale writer) and its derived ``idempotency_key`` for external APIs."""
    ctx = _TOOL.get()
    if ctx is None:
        raise LookupError("tool_context() is only available inside an idempotent_tool call")
    return ctx


def run_fencing_token() -> int:
    """The fencing token of the session's run lock held by the :func:`run_once` running now."""
    run = _RUN.get()
    if run is None:
        raise LookupError("run_fencing_token() is only available inside run_once")
    return run.fencing_token


def _encode(item: Mapping[str, Any], request_id: str | None) -> tuple[str, str, dict[str, Any]]:
    """(role, text, extra) of a history message: the item whole, its string content once."""
    role = item.get("role")
    kind = role if isinstance(role, str) else str(item.get("type", "item"))
    content = item.get("content")
    extra: dict[str, Any]
    if isinstance(content, str):
        extra = {"item": {k: v for k, v in item.items() if k != "content"}, _TEXT: True}
        text = content
    else:
        extra = {"item": dict(item)}
        text = ""
    if request_id is not None:
        extra["run"] = request_id
    return kind, text, extra


def _decode(message: Mapping[str, Any]) -> TResponseInputItem:
    item = message.get("item")
    if item.__class__ is dict and _TEXT not in message:  # the common case, first
        return item  # type: ignore[return-value]
    if not isinstance(item, dict):  # written by History.append: a plain chat message
        plain: Any = {"role": message.get("role", "user"), "content": message.get("text", "")}
        return plain  # type: ignore[no-any-return]
    if message.get(_TEXT):  # the message was decoded for this call: its item is ours
        item["content"] = message.get("text", "")
    decoded: Any = item
    return decoded  # type: ignore[no-any-return]


class AgentStateSession:
    """The openai-agents ``Session`` of ``session_id`` on a memorywatch ``AgentState`` (sync
    or asyncio; the sync one blocks the loop for each round trip, fine with
    ``Runner.run_sync``)."""

    session_settings: SessionSettings | None = None

    def __init__(
        self,
        session_id: str,
        state: AgentState | aio.AgentState,
        *,
        user_id: str | None = None,
        session_settings: SessionSettings | None = None,
    ) -> None:
        self.session_id = session_id
        self.state = check_state(state)
        self.session_settings = session_settings or SessionSettings()
        self._history: Any = state.history(session_id, user_id)

    async def get_items(self, limit: int | None = None) -> list[TResponseInputItem]:
        """The items oldest first (the latest ``limit`` if given); ``[]`` for a new session.
        Raises ``StateMiss`` when the history was evicted or deleted before its TTL."""
        wanted = resolve_session_limit(limit, self.session_settings)
        if wanted is not None and wanted <= 0:
            return []
        messages = await call(self._history.load)
        if wanted is not None:
            messages = messages[-wanted:]
        return [_decode(m) for m in messages]

    async def add_items(self, items: list[TResponseInputItem]) -> None:
        """Append in one round trip; refreshes the session's TTL."""
        if not items:
            return
        run = _RUN.get()
        tag = run.request_id if run is not None and run.session_id == self.session_id else None
        await call(self._history.extend, [_encode(item, tag) for item in items])

    async def pop_item(self) -> TResponseInputItem | None:
        """Remove and return the newest item; ``None`` for an empty session, ``StateMiss``
        for a lost one."""
        message = await call(self._history.pop)
        return None if message is None else _decode(message)

    async def clear_session(self) -> None:
        """Delete the history (a later ``get_items`` sees a new session, not a miss)."""
        await call(self._history.forget)

    async def _roll_back(self, request_id: str) -> int:
        """Drop the newest items an earlier, unfinished run of ``request_id`` wrote (one that
        raised or died): under the run lock and with the request's record claimed, no live or
        finished run of the request wrote them. Returns how many."""
        messages = await call(self._history.load)
        partial = 0
        for message in reversed(messages):
            if message.get("run") != request_id:
                break
            partial += 1
        for _ in range(partial):
            await call(self._history.pop)
        return partial


def _output(final_output: Any) -> Any:
    """An output as recorded (JSON): a pydantic model (a structured tool output, a typed final
    output) as its JSON dict, which the SDK accepts back."""
    dump = getattr(final_output, "model_dump", None)
    return dump(mode="json") if callable(dump) else final_output


def _record(
    session: AgentStateSession, request_id: str, wait: float, ttl: float | None
) -> tuple[str, ToolOptions]:
    """The run record's key and options. A run that raises frees its record (a retry of the
    request runs the turn again)."""
    options = ToolOptions(wait=wait, deadline=ttl, renew=True, retryable=(Exception,))
    return f"{session.session_id}:{request_id}", options


async def run_once(
    agent: Agent[Any],
    input: str | list[TResponseInputItem],
    *,
    session: AgentStateSession,
    request_id: str,
    wait: float = DEFAULT_RUN_WAIT,
    ttl: float | None = None,
    **runner_kwargs: Any,
) -> Any:
    """``Runner.run(agent, input, session=session)`` at most once per ``request_id``; returns
    the final output (recorded as JSON for the state's tool retention, 24 h by default).

    The run holds the session's run lock (kind ``agent_run``, renewed while the turn runs, TTL
    ``ttl`` or the state's lock TTL): another run of the session waits up to ``wait`` seconds
    (then ``LockTimeout``). Under the lock the request's record is claimed: a double submit or
    a later replay finds it completed and returns its output without running the agent; the
    same ``request_id`` with another ``input`` raises ``FingerprintMismatch``. A run that
    raises is not recorded; if the holder died mid-turn, the next run of the request (after
    the lock TTL) takes the record over. Either way the retry drops the items the unfinished
    run appended to the session and runs the turn again; tools wrapped with
    :func:`idempotent_tool` replay their recorded results instead of running their side
    effects again.
    """
    state = session.state
    if not isinstance(state, aio.AgentState):
        raise TypeError("run_once needs a memorywatch.agent.aio.AgentState (run_once_sync: sync)")
    async with state.lock(RUN_LOCK, session.session_id, ttl=ttl, wait=wait, renew=True) as lease:

        async def turn(record: ToolContext, given: Any) -> Any:
            with bound(_RUN, _Run(session.session_id, request_id, lease.fencing_token, record)):
                await session._roll_back(request_id)
                result = await Runner.run(agent, given, session=session, **runner_kwargs)
            return _output(result.final_output)

        key, options = _record(session, request_id, wait, ttl)
        return await state.run_tool(RUN_RECORD, key, turn, input, tool_options=options)


def run_once_sync(
    agent: Agent[Any],
    input: str | list[TResponseInputItem],
    *,
    session: AgentStateSession,
    request_id: str,
    wait: float = DEFAULT_RUN_WAIT,
    ttl: float | None = None,
    **runner_kwargs: Any,
) -> Any:
    """:func:`run_once` with ``Runner.run_sync`` on a sync ``AgentState``."""
    state = session.state
    if not isinstance(state, AgentState):
        raise TypeError("run_once_sync needs a sync memorywatch.agent.AgentState")
    with state.lock(RUN_LOCK, session.session_id, ttl=ttl, wait=wait, renew=True) as lease:

        def turn(record: ToolContext, given: Any) -> Any:
            with bound(_RUN, _Run(session.session_id, request_id, lease.fencing_token, record)):
                asyncio.run(session._roll_back(request_id))
                result = Runner.run_sync(agent, given, session=session, **runner_kwargs)
            return _output(result.final_output)

        key, options = _record(session, request_id, wait, ttl)
        return state.run_tool(RUN_RECORD, key, turn, input, tool_options=options)


def _wrap(tool: FunctionTool, state: AgentState | aio.AgentState, options: ToolOptions) -> Any:
    invoke = tool.on_invoke_tool

    async def on_invoke(ctx: AgentsToolContext[Any], arguments: str) -> Any:
        run = _RUN.get()
        key = run.call_key(tool.name) if run is not None else f"call:{ctx.tool_call_id}"
        opts = dataclasses.replace(options, call_id=ctx.tool_call_id)
        if isinstance(state, aio.AgentState):

            async def body(mw: ToolContext, given: str) -> Any:
                with bound(_TOOL, mw):
                    return _output(await invoke(ctx, given))

            return await state.run_tool(tool.name, key, body, arguments, tool_options=opts)

        loop = asyncio.get_running_loop()

        def body_sync(mw: ToolContext, given: str) -> Any:
            with bound(_TOOL, mw):  # copied into the task the loop runs the tool in

                async def invoked() -> Any:
                    return await invoke(ctx, given)

                return _output(asyncio.run_coroutine_threadsafe(invoked(), loop).result())

        run_tool = functools.partial(state.run_tool, tool_options=opts)
        return await asyncio.to_thread(run_tool, tool.name, key, body_sync, arguments)

    return dataclasses.replace(tool, on_invoke_tool=on_invoke)


@overload
def idempotent_tool(
    state: AgentState | aio.AgentState, tool: FunctionTool, *, options: ToolOptions | None = ...
) -> FunctionTool: ...
@overload
def idempotent_tool(
    state: AgentState | aio.AgentState, tool: None = ..., *, options: ToolOptions | None = ...
) -> Callable[[FunctionTool], FunctionTool]: ...
def idempotent_tool(
    state: AgentState | aio.AgentState,
    tool: FunctionTool | None = None,
    *,
    options: ToolOptions | None = None,
) -> FunctionTool | Callable[[FunctionTool], FunctionTool]:
    """Make a ``FunctionTool`` (from ``@function_tool``) run each call at most once:
    ``idempotent_tool(state, book)`` or ``@idempotent_tool(state)`` above ``@function_tool``.

    Inside :func:`run_once` a call is keyed by the session, the request and its rank among the
    request's calls of this tool (the model's call id, fresh on every run, is recorded as
    ``gen_ai.tool.call.id``); outside it by the model's call id. The arguments are the
    fingerprint; the result (JSON, usually the tool's string) is replayed. The tool reads its
    fencing token with :func:`tool_context`. A concurrent call of the same key waits
    ``options.wait`` (default 5 s) for the first one's answer.
    """
    check_state(state)
    opts = options or ToolOptions()
    if tool is not None:
        wrapped: FunctionTool = _wrap(tool, state, opts)
        return wrapped
    return lambda fn: _wrap(fn, state, opts)
